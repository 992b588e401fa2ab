"""The registry of decision protocols: one module per protocol, each a ``ProtocolSpec``.

``get(name)`` gives a protocol object (a name, an enum member or a project's protocol value);
``all()`` lists them in a fixed order; ``names()`` gives their stored names (the OpenAPI enums).
Adding a protocol: a module here with its ProtocolSpec subclass, its form template and its tests,
and one line in ``_PROTOCOLS``; see the README's layout section.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ValidationError
from . import quality, severity, skin_type
from .base import CleanLabel, IsKnownCode, ProtocolSpec

_PROTOCOLS: tuple[ProtocolSpec, ...] = (quality.PROTOCOL, severity.PROTOCOL, skin_type.PROTOCOL)
_BY_NAME = {p.name: p for p in _PROTOCOLS}


def all() -> tuple[ProtocolSpec, ...]:
    """Every protocol, in the order pages list them."""
    return _PROTOCOLS


def names() -> list[str]:
    """The stored protocol names (the OpenAPI enums, the CLI choices)."""
    return [p.name for p in _PROTOCOLS]


def get(name: Any) -> ProtocolSpec:
    """The protocol called `name` (a str, an enum member or a protocol object); ValidationError for
    an unknown one."""
    if isinstance(name, ProtocolSpec):
        return name
    key = getattr(name, "value", name)
    try:
        return _BY_NAME[key]
    except (KeyError, TypeError):
        raise ValidationError(
            f"unknown protocol {key!r}; the protocols are: {', '.join(names())}",
            field="protocol",
        ) from None


def decision_name(value: object) -> str:
    """A stored decision in words, whatever the protocol ('no_skin' -> 'No skin'); an unknown
    value is shown in words too, never as a code."""
    text = str(value)
    for p in _PROTOCOLS:
        if text in p.decisions:
            return p.decision_name(text)
    return text.replace("_", " ").capitalize()


def all_decisions() -> tuple[str, ...]:
    """Every stored decision of every protocol, in protocol order, once each."""
    return tuple(dict.fromkeys(d for p in _PROTOCOLS for d in p.decisions))


def validate_submission(
    protocol: Any,
    settings: Mapping[str, Any] | None,
    data: Any,
    is_known_code: IsKnownCode,
) -> CleanLabel:
    """The clean label for a submission under a project's protocol and stored settings."""
    spec = get(protocol)
    if not isinstance(data, Mapping):
        raise ValidationError("the label must be a JSON object")
    return spec.validate(data, spec.parse_settings(settings), is_known_code)


def form_spec(protocol: Any, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the labeling form of a project renders (its protocol's form_spec)."""
    spec = get(protocol)
    return spec.form_spec(spec.parse_settings(settings))


def answer_name(protocol: Any, settings: Mapping[str, Any] | None, label: Any) -> str:
    """A label's whole answer in words under its project's protocol ("3 · Mild", "Type IV",
    "Poor quality (Blurry)"), for My labels, the flags page and the ties."""
    spec = get(protocol)
    return spec.answer_name(label, spec.parse_settings(settings))
