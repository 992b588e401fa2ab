"""What one answer labels in a project: a photo or a whole case (docs/domain.md section 11).

Pure. The one place outside the protocol registry that knows which protocols may answer per case:
quality judges each photo on its own (one photo can be blurry while the next is sharp), while a
severity grade or a skin type describes the patient, so those may be given once for the case.
When the registry (labeler/protocols/) declares this per protocol, ``allows_per_case`` asks it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# the protocols whose answer describes the patient rather than the photo
_PER_CASE_PROTOCOLS = frozenset({"severity", "skin_type"})


def allows_per_case(protocol: Any) -> bool:
    """True when the protocol's answer may be given once for all photos of a case."""
    return getattr(protocol, "value", protocol) in _PER_CASE_PROTOCOLS


def case_view(settings: Mapping[str, Any] | None) -> bool:
    """The project shows its raters a case's photos together."""
    return bool(((settings or {}).get("cases") or {}).get("view", False))


def per_case(protocol: Any, settings: Mapping[str, Any] | None) -> bool:
    """One answer labels the whole case (settings validated this; re-checked against the protocol)."""
    cases = (settings or {}).get("cases") or {}
    return bool(cases.get("view")) and cases.get("unit") == "case" and allows_per_case(protocol)


def shown_columns(settings: Mapping[str, Any] | None) -> list[str]:
    """The manifest columns the lead chose to show raters beside a case's photos."""
    return list(((settings or {}).get("cases") or {}).get("show") or [])


def unit_choices(protocol: Any) -> list[tuple[str, str]]:
    """What one answer may label in a project of the protocol, for the settings page."""
    choices = [("image", "Each photo (an answer per photo)")]
    if allows_per_case(protocol):
        choices.append(("case", "The whole case (one answer for all its photos)"))
    return choices
