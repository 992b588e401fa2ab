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

    def search(self, query: str, limit: int = 20) -> list[Code]:
        """Codes whose code starts with the query, then codes whose name holds every word (the last one as a prefix)."""
        limit = max(1, min(limit, MAX_RESULTS))
        query = query.strip()
        if not query:
            return []
        key = normalize_code(query)
        hits: list[int] = []
        if re.fullmatch(r"[A-Z]([0-9][0-9A-Z]{0,5})?", key):
            hits = self._code_prefix(key, limit)
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
