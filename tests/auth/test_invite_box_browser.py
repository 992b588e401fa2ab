"""The invite box is styled like the app's other forms (the e-mail field was left with the
browser's default look, the roles in the default grooved frame)."""

from __future__ import annotations

import pytest
from browser_support.fixtures import sign_in

from labeler.auth.models import Role
from labeler.auth.services import add_user

pytestmark = pytest.mark.browser

STYLE = """(sel) => { const s = getComputedStyle(document.querySelector(sel));
  return [s.borderTopStyle, s.borderTopWidth, s.borderTopLeftRadius, s.paddingLeft].join(' '); }"""


def test_invite_box_fields_look_like_the_other_fields(live_server, browser_page):
    with live_server.session() as s:
        add_user(s, None, "admin@invite.test", "Ada Admin", [Role.admin])
    page = browser_page
    sign_in(page, live_server, "admin@invite.test")
    page.goto(f"{live_server.url}/admin/users")
    name_field = page.evaluate(STYLE, "#invite #name")
    assert page.evaluate(STYLE, "#invite #email") == name_field
    assert name_field.startswith("solid 1px 6px")
    assert page.evaluate(STYLE, "#invite fieldset").startswith("solid 1px 6px")
