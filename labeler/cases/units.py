"""What one answer labels in a project: a photo or a whole case (docs/domain.md section 11).

Pure. Which protocols may answer per case is the protocol's own declaration (``per_case`` in
labeler/protocols/): quality judges each photo on its own (one photo can be blurry while the next is
sharp), while a severity grade or a skin type describes the patient, so those may be given once for
the case.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import protocols
from ..projects.settings import read_settings


def allows_per_case(protocol: Any) -> bool:
    """True when the protocol's answer may be given once for all photos of a case."""
    return protocols.get(protocol).per_case


def case_view(settings: Mapping[str, Any] | None) -> bool:
    """The project shows its raters a case's photos together."""
    return read_settings(settings).case_view


def per_case(protocol: Any, settings: Mapping[str, Any] | None) -> bool:
    """One answer labels the whole case (settings validated this; re-checked against the protocol)."""
    typed = read_settings(settings)
    return typed.case_view and typed.case_unit == "case" and allows_per_case(protocol)


def shown_columns(settings: Mapping[str, Any] | None) -> list[str]:
    """The manifest columns the lead chose to show raters beside a case's photos."""
    return list(read_settings(settings).case_show)


def unit_choices(protocol: Any) -> list[tuple[str, str]]:
    """What one answer may label in a project of the protocol, for the settings page."""
    choices = [("image", "Each photo (an answer per photo)")]
    if allows_per_case(protocol):
        choices.append(("case", "The whole case (one answer for all its photos)"))
    return choices
