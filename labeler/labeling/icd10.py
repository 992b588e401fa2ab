"""ICD-10-CM codes from the `simple-icd-10-cm` package, loaded once into an in-memory search index.

The package parses its 10 MB XML at import (about 4 s) and uses a deprecated resources API, so we
read its bundled data files ourselves (about 0.5 s) with the same rules it uses: every <diag> code,
plus the seventh-character codes its <sevenChrDef> tables generate, kept only where the official
code list confirms them. A test checks that the result equals the package's own.
"""

from __future__ import annotations

import bisect
import heapq
import importlib.util
import re
import threading
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "simple_icd_10_cm"
MAX_RESULTS = 50
# Codes a dermatologist reaches for first rank first among name matches: skin diseases (chapter L),
# skin infections and infestations, skin neoplasms.
_DERM_PREFIXES = (
    "L",
    "B0",
    "B35",
    "B36",
    "B86",
    "C43",
    "C44",
    "C4A",
    "D03",
    "D04",
    "D22",
    "D23",
    "I78",
    "Q82",
)
_WORD = re.compile(r"[a-z0-9]+")

# What dermatologists type that the code titles do not say: standard abbreviations, British spellings
# and common names, each with the codes the ICD-10-CM Alphabetic Index gives for the term (the
# "see" entries: Eczema -> Dermatitis; Keloid -> L91.0; Bowen's disease -> D04.9; Keratoacanthoma ->
# L85.8; Dermatofibroma -> Neoplasm, skin, benign D23.9; Lentigo -> L81.4; Mole -> nevus, D22.-).
# Reviewed by hand: a term goes here only when its meaning is unambiguous in a skin clinic. A query
# equal to a term (or, from 4 letters, most of the start of a longer term) lists these codes first, then
# the ordinary code and word matches. tests/labeling/test_icd10_index.py checks every code exists.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "bcc": ("C44.91",),
    "basal cell": ("C44.91",),
    "basalioma": ("C44.91",),
    "rodent ulcer": ("C44.91",),
    "scc": ("C44.92",),
    "cscc": ("C44.92",),
    "scc in situ": ("D04.9",),
    "sccis": ("D04.9",),
    "bowen": ("D04.9",),
    "bowens disease": ("D04.9",),
    "mm": ("C43.9",),
    "mis": ("D03.9",),
    "lentigo maligna": ("D03.9",),
    "nmsc": ("C44.91", "C44.92", "C44.90"),
    "ak": ("L57.0",),
    "aks": ("L57.0",),
    "solar keratosis": ("L57.0",),
    "sk": ("L82.1", "L82.0"),
    "seb k": ("L82.1", "L82.0"),
    "seb ks": ("L82.1", "L82.0"),
    "seborrhoeic keratosis": ("L82.1", "L82.0"),
    "seborrheic wart": ("L82.1",),
    "basal cell papilloma": ("L82.1",),
    "nevus": ("D22.9", "I78.1"),
    "naevus": ("D22.9", "I78.1"),
    "nevi": ("D22.9",),
    "naevi": ("D22.9",),
    "mole": ("D22.9",),
    "melanocytic naevus": ("D22.9",),
    "dysplastic nevus": ("D22.9",),
    "dysplastic naevus": ("D22.9",),
    "eczema": ("L30.9", "L20.9"),
    "atopic eczema": ("L20.9",),
    "ad": ("L20.9",),
    "seb derm": ("L21.9",),
    "seborrhoeic dermatitis": ("L21.9",),
    "acd": ("L23.9",),
    "pso": ("L40.0", "L40.9"),
    "plaque psoriasis": ("L40.0",),
    "hs": ("L73.2",),
    "acne inversa": ("L73.2",),
    "lp": ("L43.9",),
    "dle": ("L93.0",),
    "bp": ("L12.0",),
    "ringworm": ("B35.9", "B35.4"),
    "wart": ("B07.9", "B07.8"),
    "verruca": ("B07.9", "B07.8"),
    "verruca vulgaris": ("B07.8",),
    "cold sore": ("B00.1",),
    "hsv": ("B00.1",),
    "shingles": ("B02.9",),
    "hz": ("B02.9",),
    "keloid": ("L91.0",),
    "dermatofibroma": ("D23.9",),
    "df": ("D23.9",),
    "lentigo": ("L81.4",),
    "solar lentigo": ("L81.4",),
    "keratoacanthoma": ("L85.8",),
    "ka": ("L85.8",),
    "hives": ("L50.9",),
    "epidermoid cyst": ("L72.0",),
    "pih": ("L81.0",),
    "haemangioma": ("D18.01",),
    "hemangioma": ("D18.01",),
    "tinea versicolor": ("B36.0",),
    "pityriasis versicolour": ("B36.0",),
    "onychomycosis": ("B35.1",),
    "ingrown toenail": ("L60.0",),
    "itch": ("L29.9",),
}


@dataclass(frozen=True)
class Code:
    code: str  # with the dot, as printed: "L70.0"
    name: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "name": self.name}


def normalize_code(text: str) -> str:
    """Upper-case, no dot, no spaces: 'l70.0 ' -> 'L700'."""
    return re.sub(r"[\s.]", "", text).upper()


def _words(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return _WORD.findall(folded)


def data_files() -> tuple[Path, Path]:
    """The package's code list and tabular XML (found without importing the package)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the ICD-10-CM list needs the 'simple-icd-10-cm' package (pip install simple-icd-10-cm)"
        )
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    return next(data.glob("code-list-*.txt")), next(data.glob("icd10c-tabular-*.xml"))


def load_codes() -> list[Code]:
    """All ICD-10-CM categories, subcategories and seventh-character codes, in tabular order."""
    code_list, tabular = data_files()
    confirmed = {
        line.split(" ")[0].replace(".", "") for line in code_list.read_text("utf-8").split("\n")
    }
    root = ET.parse(tabular).getroot()
    out: list[Code] = []

    def seven_chr(node: ET.Element) -> dict[str, str] | None:
        table = node.find("sevenChrDef")
        if table is None:
            return None
        result: dict[str, str] = {}
        last = None
        for ext in table:
            if ext.tag == "extension":
                last = ext.attrib["char"]
                result[last] = ext.text or ""
            elif ext.tag == "note" and last is not None and ext.text:
                result[last] += "/" + ext.text
        return result

    def walk(node: ET.Element, inherited: dict[str, str] | None) -> None:
        name, desc = node.findtext("name") or "", node.findtext("desc") or ""
        own = seven_chr(node)
        table = own if own is not None else inherited
        out.append(Code(name, desc))
        children = node.findall("diag")
        for child in children:
            walk(child, table)
        if not children and table:
            ext_name = name + "." if len(name) == 3 else name
            ext_name = ext_name.ljust(7, "X")
            for char, text in table.items():
                if ext_name[:3] + ext_name[4:] + char in confirmed:
                    out.append(Code(ext_name + char, f"{desc}, {text}"))

    for chapter in root.iter("chapter"):
        for section in chapter.findall("section"):
            for diag in section.findall("diag"):
                walk(diag, None)
    return out


class Index:
    """Search by code prefix (sorted codes + bisect) or by words of the name (inverted index)."""

    def __init__(self, codes: list[Code]) -> None:
        self.codes = codes
        self.by_code = {normalize_code(c.code): i for i, c in enumerate(codes)}
        self.sorted_keys = sorted(self.by_code)
        postings: dict[str, list[int]] = {}
        for i, c in enumerate(codes):
            for w in set(_words(c.name)):
                postings.setdefault(w, []).append(i)
        self.postings = {w: frozenset(ids) for w, ids in postings.items()}
        self.vocabulary = sorted(self.postings)
        self.rank = [self._rank(c) for c in codes]

    @staticmethod
    def _rank(c: Code) -> tuple[int, int, str]:
        derm = 0 if c.code.startswith(_DERM_PREFIXES) else 1
        return (derm, len(c.code), c.code)

    def get(self, code: str) -> Code | None:
        i = self.by_code.get(normalize_code(code))
        return None if i is None else self.codes[i]

    def _code_prefix(self, prefix: str, limit: int) -> list[int]:
        start = bisect.bisect_left(self.sorted_keys, prefix)
        hits = []
        for key in self.sorted_keys[start:]:
            if not key.startswith(prefix) or len(hits) >= limit:
                break
            hits.append(self.by_code[key])
        return hits

    def _word_prefix(self, prefix: str) -> frozenset[int] | set[int]:
        exact = self.postings.get(prefix)
        start = bisect.bisect_left(self.vocabulary, prefix)
        words = []
        for w in self.vocabulary[start:]:
            if not w.startswith(prefix):
                break
            words.append(w)
        if len(words) == 1 and exact is not None:
            return exact
        found: set[int] = set()
        for w in words:
            found |= self.postings[w]
        return found

    def synonym_hits(self, query: str) -> list[int]:
        """The codes SYNONYMS gives for the query (a term, or most of the start of one)."""
        words = _words(query.replace("'", ""))
        if not words:
            return []
        text = " ".join(words)
        terms = [text] if text in SYNONYMS else []
        if (
            len(text) >= 4
        ):  # a term being typed: most of it already there ("acne" is not "acne inversa")
            terms += sorted(
                t
                for t in SYNONYMS
                if t.startswith(text) and t != text and len(text) >= 0.6 * len(t)
            )
        hits: list[int] = []
        for term in terms:
            for code in SYNONYMS[term]:
                i = self.by_code.get(normalize_code(code))
                if i is not None and i not in hits:
                    hits.append(i)
        return hits

    def search(self, query: str, limit: int = 20) -> list[Code]:
        """Codes a synonym names, codes that start with the query, then codes whose name holds
        every word (the last one as a prefix)."""
        limit = max(1, min(limit, MAX_RESULTS))
        query = query.strip()
        if not query:
            return []
        key = normalize_code(query)
        hits: list[int] = self.synonym_hits(query)[:limit]
        if re.fullmatch(r"[A-Z]([0-9][0-9A-Z]{0,5})?", key):
            hits += [i for i in self._code_prefix(key, limit) if i not in hits][: limit - len(hits)]
        words = _words(query)
        if len(hits) < limit and words:
            sets = [self.postings.get(w, frozenset()) for w in words[:-1]]
            sets.append(self._word_prefix(words[-1]))
            sets.sort(key=len)
            matched = set(sets[0]).intersection(*sets[1:]) if sets else set()
            seen = set(hits)
            rest = heapq.nsmallest(
                limit - len(hits), (i for i in matched if i not in seen), key=self.rank.__getitem__
            )
            hits.extend(rest)
        return [self.codes[i] for i in hits]


_index: Index | None = None
_lock = threading.Lock()


def index() -> Index:
    """The process-wide index, built on first use."""
    global _index
    if _index is None:
        with _lock:
            if _index is None:
                _index = Index(load_codes())
    return _index


def search(query: str, limit: int = 20) -> list[Code]:
    return index().search(query, limit)


def lookup(code: str) -> Code | None:
    """The ICD-10-CM entry for a code (with or without the dot), or None if it is not in the list."""
    return index().get(code)
