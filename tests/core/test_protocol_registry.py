"""The protocol registry is the one place that knows protocols by name (issue 13, section 1).

Greps labeler/ and templates/ for comparisons of a protocol name ("quality", "severity",
"skin_type") or a Protocol enum member outside labeler/protocols/: every such decision belongs to
the protocol object (``protocols.get(project.protocol).has_classes``, ``.form_template``, ...).
Checks that the OpenAPI document's enums come from the registry.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import labeler
from labeler import protocols
from labeler.api.openapi import document
from labeler.projects.models import Protocol

ROOT = Path(labeler.__file__).resolve().parent.parent
NAMES = protocols.names()
# labeler/ml is the model library: its "kind" names a bundled model ("quality", "severity"), the
# web side reaches it through a protocol's model_kind; labeler/protocols is the registry itself.
EXEMPT = ("labeler/protocols/", "labeler/ml/")


def _patterns(names: list[str]) -> list[re.Pattern[str]]:
    alt = "|".join(map(re.escape, names))
    q = rf"""["'](?:{alt})["']"""
    return [
        re.compile(rf"(?:==|!=|\bis\b|\bis not\b)\s*{q}"),  # x == "quality"
        re.compile(rf"{q}\s*(?:==|!=)"),  # "quality" == x
        re.compile(rf"\bin\s*[\(\[\{{][^\)\]\}}]*{q}"),  # x in ("quality", ...)
        re.compile(rf"Choice\(\s*\[[^\]]*{q}"),  # click.Choice(["quality", ...])
        re.compile(rf"\bProtocol\.(?:{alt})\b"),  # Protocol.quality
        re.compile(
            rf"{q}\s*:[^,}}]*}}\s*\.get\(\s*[\w.]*protocol"
        ),  # {"quality": ...}.get(protocol)
        re.compile(rf"(?:if|elif)\b[^:]*\bprotocol\b[^:]*{q}"),  # Jinja/py: if ... protocol ... "x"
        re.compile(rf"{q}\s*,\s*{q}"),  # ("severity", "skin_type"): a set of protocols
    ]


PATTERNS = _patterns(NAMES)
# A model kind (training.models.ModelKind: "quality", "severity") names a bundled model, not a
# protocol: `model.kind == "quality"` picks that model's code; a protocol names its model in
# model_kind. Such lines are left to the model code.
MODEL_KIND = re.compile(r"""(?:\b|_)kind\b["'\]]*\s*(?:==|!=)""")


def comparisons(text: str) -> list[str]:
    return [
        line.strip()
        for line in text.splitlines()
        if any(p.search(line) for p in PATTERNS) and not MODEL_KIND.search(line)
    ]


def sources() -> list[Path]:
    files = sorted((ROOT / "labeler").rglob("*.py")) + sorted((ROOT / "templates").rglob("*.html"))
    return [p for p in files if not str(p.relative_to(ROOT)).startswith(EXEMPT)]


@pytest.mark.parametrize(
    "line",
    [
        'if project.protocol.value == "quality":',
        "quality = m.protocol.value != 'severity'",
        'if kind in ("quality", "severity"):',
        '{% if spec.protocol == "quality" %}',
        "{% if project.protocol.value == 'severity' %}",
        "if project.protocol is Protocol.quality:",
        '@click.option("--protocol", type=click.Choice(["quality", "severity"]))',
        "{{ {'quality': 'image quality'}.get(project.protocol.value) }}",
        '_PER_CASE_PROTOCOLS = frozenset({"severity", "skin_type"})',
        'ASKED_BY = ("quality", "severity")',
    ],
)
def test_the_grep_finds_comparisons(line):
    assert comparisons(line) == [line.strip()]


@pytest.mark.parametrize(
    "line",
    [
        'if decision == "poor_quality":',  # a quality decision, not the protocol's name
        'out["quality"] = rec["class"]',
        "protocol = protocols.get(project.protocol)",
        'QUALITY_KIND = "quality"  # a model kind',
        '"skin_type": label.skin_type,',
        'LABEL_FIELDS = ("decision", "grade", "skin_type")  # skin_type: a label field',
        'if model.kind != "quality":  # a model kind',
        "{% if m.kind == 'quality' %}",
        "{% if protocol.model_kind == 'quality' %}",
    ],
)
def test_the_grep_leaves_other_lines_alone(line):
    assert comparisons(line) == []


def test_no_module_outside_the_registry_compares_protocol_names():
    found = {
        str(path.relative_to(ROOT)): hits
        for path in sources()
        if (hits := comparisons(path.read_text(encoding="utf-8")))
    }
    assert found == {}, "ask the protocol object (labeler/protocols/) instead: " + repr(found)


def test_the_registry_carries_every_protocol_and_the_enum_follows_it():
    assert NAMES == ["quality", "severity", "skin_type"]
    assert [p.value for p in Protocol] == NAMES
    assert all(len(name) <= 16 for name in NAMES)  # projects.protocol is String(16)
    for spec in protocols.all():
        assert protocols.get(spec.name) is spec
        assert protocols.get(Protocol(spec.name)) is spec
        assert (ROOT / "templates" / spec.form_template).is_file()


def _enums(node, path=()):
    """Every (path, enum list) in a JSON schema tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "enum":
                yield path, value
            else:
                yield from _enums(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _enums(value, (*path, i))


def test_the_openapi_enums_come_from_the_registry():
    enums = list(_enums(document()))
    protocol_enums = [e for path, e in enums if path and path[-1] == "protocol"]
    assert protocol_enums and all(e == NAMES for e in protocol_enums)
    decisions = [e for path, e in enums if path and path[-1] == "decision"]
    assert decisions and all(e == list(protocols.all_decisions()) for e in decisions)
    kinds = [e for path, e in enums if path and path[-1] == "kind" and "quality" in e]
    assert kinds == [[p.model_kind for p in protocols.all() if p.model_kind]]
    # no other enum lists a protocol name by hand
    for path, values in enums:
        if set(values) & set(NAMES) and path[-1] not in ("protocol", "kind"):
            raise AssertionError(f"{path}: {values}")
