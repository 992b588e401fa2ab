"""The registry of decision protocols: one module per protocol, each a ``ProtocolSpec``.

``get(name)`` gives a protocol object (a name, an enum member or a project's protocol value);
``all()`` lists them in a fixed order; ``names()`` gives their stored names (the OpenAPI enums).
Adding a protocol: a module here with its ProtocolSpec subclass, its form template and its tests,
and one line in ``_PROTOCOLS``; see the README's layout section.
"""

from __future__ import annotations

from typing import Any

from ..errors import ValidationError
from . import skin_type
from .base import ProtocolSpec

_PROTOCOLS: tuple[ProtocolSpec, ...] = (skin_type.PROTOCOL,)
_BY_NAME = {p.name: p for p in _PROTOCOLS}


def all() -> tuple[ProtocolSpec, ...]:
    """Every protocol, in the order pages list them."""
    return _PROTOCOLS


def names() -> list[str]:
    """The stored protocol names (the OpenAPI enums, the CLI choices)."""
    return [p.name for p in _PROTOCOLS]


def get(name: Any) -> ProtocolSpec:
    """The protocol called `name` (a str or an enum member); ValidationError for an unknown one."""
    key = getattr(name, "value", name)
    try:
        return _BY_NAME[key]
    except (KeyError, TypeError):
        raise ValidationError(
            f"unknown protocol {key!r}; the protocols are: {', '.join(names())}",
            field="protocol",
        ) from None
