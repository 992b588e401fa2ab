"""Single sign-on through the app: Flask test client + the real local OpenID provider.

The provider plays Entra ID (its login form is filled by `oidc_provider.sign_in`); the test client
then brings the redirect's query back to /auth/redirect, as the browser would. Every refusal must
show a clear page, leave nobody signed in and create or bind no account.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from html import unescape as html_unescape
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import session as flask_session
from flask.testing import FlaskClient
from helpers import CSRF_META, Clock, make_config
from sqlalchemy import func, select
from sso_support.fixtures import app_sso_config
from sso_support.provider import DEFAULT_TENANT, OTHER_TENANT, REFUSED_TOKENS, OIDCProvider

from labeler import create_app
from labeler.auth import login as login_module
from labeler.auth import sso
from labeler.auth.models import Role, User
from labeler.auth.services import create_token, end_sessions, set_active
from labeler.auth.views import SSO_ERROR_MESSAGES
from labeler.errors import LabelerError

HOME = "/"


@pytest.fixture()
def app_settings() -> dict[str, object]:
    """Extra settings for the app under test; tests override it through indirect use or by mutation."""
    return {}


@pytest.fixture()
def app(tmp_path, database_url, connection, oidc_provider, app_settings) -> Iterator[object]:
    """The app in single sign-on mode against the local provider (overrides conftest's dev-mode app)."""
    application = create_app(
        make_config(tmp_path, database_url, **app_sso_config(oidc_provider, **app_settings))
    )
    application.extensions["labeler_db"].bind(connection)
    yield application
    application.extensions["labeler_db"].engine.dispose()


SignIn = Callable[..., object]


@pytest.fixture()
def sign_in(client: FlaskClient, oidc_provider: OIDCProvider) -> SignIn:
    """Start at /auth/sso/start, sign in at the provider, bring the redirect back; returns the response."""

    def run(username: str, *, next_path: str | None = None, query_hook=None, http=None):
        start = client.get(
            "/auth/sso/start", query_string={"next": next_path} if next_path else None
        )
        assert start.status_code == 302, start.get_data(as_text=True)
        assert start.headers["Location"].startswith(oidc_provider.issuer + "/auth?")
        query = oidc_provider.sign_in(start.headers["Location"], username, http=http)
        if query_hook is not None:
            query = query_hook(query)
        return client.get("/auth/redirect", query_string=query)

    return run


def user_count(db) -> int:
    return db.scalar(select(func.count(User.id)))


def signed_out(client: FlaskClient) -> bool:
    resp = client.get(HOME)
    return resp.status_code == 302 and "/auth/login" in resp.headers["Location"]


def refusal(resp) -> tuple[int, str, str]:
    """(status, data-code, message) of the refusal page."""
    html = resp.get_data(as_text=True)
    match = re.search(r'<p id="refusal" data-code="([^"]*)">([^<]*)</p>', html)
    assert match, html
    return resp.status_code, match.group(1), html_unescape(match.group(2))


def invite(make_user, email: str, *roles: str):
    return make_user(email, *(roles or ("rater",)))


# --- positive paths -------------------------------------------------------------------------------


def test_invitation_is_bound_to_the_oid_at_first_sign_in(
    client, db, make_user, sign_in, oidc_provider
):
    invited = invite(make_user, "alice@example.test", "rater")
    assert invited.oid is None
    before = user_count(db)

    resp = sign_in("alice")

    assert resp.status_code == 302 and resp.headers["Location"] == HOME
    db.refresh(invited)
    assert (invited.oid, invited.tenant_id) == (oidc_provider.users["alice"]["oid"], DEFAULT_TENANT)
    assert invited.roles == {Role.rater}  # role claims are off by default: the invitation decides
    assert invited.last_login_at is not None
    assert user_count(db) == before
    home = client.get(HOME)
    assert home.status_code == 200 and invited.name in home.get_data(as_text=True)

    # the second sign-in finds the account by (tenant, oid), not by e-mail
    client.post(
        "/auth/logout", data={"csrf_token": CSRF_META.search(home.get_data(as_text=True)).group(1)}
    )
    assert sign_in("alice").status_code == 302
    assert user_count(db) == before


def test_second_microsoft_account_with_the_same_email_cannot_take_over(
    client, db, make_user, sign_in
):
    invited = invite(make_user, "alice@example.test", "admin")
    invited.oid, invited.tenant_id = (
        "00000000-0000-4000-8000-00000000a11c",
        DEFAULT_TENANT,
    )  # bound earlier
    db.flush()
    before = user_count(db)

    status, code, message = refusal(sign_in("alice"))  # another account whose e-mail is alice's

    assert (status, code) == (403, "not_admitted")
    assert "already bound to another Microsoft account" in message
    db.refresh(invited)
    assert invited.oid == "00000000-0000-4000-8000-00000000a11c"
    assert user_count(db) == before
    assert signed_out(client)


@pytest.mark.parametrize("app_settings", [{"SSO_ROLE_CLAIMS": True}])
def test_role_claims_admit_without_invitation(client, db, sign_in, oidc_provider, app_settings):
    before = user_count(db)

    resp = sign_in("alice")  # app roles Labeler.Admin and Labeler.Lead in the token

    assert resp.status_code == 302 and resp.headers["Location"] == HOME
    user = db.scalar(select(User).where(User.oid == oidc_provider.users["alice"]["oid"]))
    assert user is not None and user.email == "alice@example.test"
    assert user.roles == {Role.admin, Role.lead}
    assert user_count(db) == before + 1
    assert client.get("/admin/users").status_code == 200  # the admin role from the claim works


@pytest.mark.parametrize("app_settings", [{"SSO_ROLE_CLAIMS": True}])
def test_role_claims_replace_invitation_roles(client, db, make_user, sign_in, app_settings):
    invited = invite(make_user, "alice@example.test", "rater")
    assert sign_in("alice").status_code == 302
    db.refresh(invited)
    assert invited.roles == {
        Role.admin,
        Role.lead,
    }  # Entra is the source of truth when claims are on


@pytest.mark.parametrize("app_settings", [{"SSO_ROLE_CLAIMS": True}])
def test_role_claims_on_but_no_role_is_refused(client, db, sign_in, app_settings):
    before = user_count(db)
    status, code, _message = refusal(sign_in("bob"))  # no app role, no invitation
    assert (status, code) == (403, "not_admitted")
    assert user_count(db) == before
    assert signed_out(client)


def test_two_tabs_signing_in_at_once_both_complete(client, db, make_user, oidc_provider):
    invite(make_user, "alice@example.test")
    first = client.get("/auth/sso/start", query_string={"next": "/projects"}).headers["Location"]
    second = client.get("/auth/sso/start", query_string={"next": "/account/tokens"}).headers[
        "Location"
    ]
    query_first = oidc_provider.sign_in(first, "alice")
    query_second = oidc_provider.sign_in(second, "alice")

    resp = client.get("/auth/redirect", query_string=query_second)
    assert resp.headers["Location"] == "/account/tokens"
    resp = client.get("/auth/redirect", query_string=query_first)  # the other tab's flow survived
    assert resp.status_code == 302 and resp.headers["Location"] == "/projects"


# --- refusals: each with a clear page, nobody signed in, no account created or bound ----------------


@pytest.mark.parametrize(("tamper", "code"), REFUSED_TOKENS)
def test_bad_id_token_is_refused(client, db, make_user, sign_in, tamper, code):
    invited = invite(make_user, f"{tamper}@example.test")  # admitted: only the token is wrong
    before = user_count(db)

    status, got, message = refusal(sign_in(f"tamper-{tamper}"))

    assert (status, got) == (400, code)
    assert message == SSO_ERROR_MESSAGES[code]
    db.refresh(invited)
    assert invited.oid is None and invited.last_login_at is None
    assert user_count(db) == before
    assert signed_out(client)


def test_wrong_nonce_is_refused(client, db, make_user, sign_in):
    invited = invite(make_user, "alice@example.test")
    before = user_count(db)

    def swap_nonce(query):
        with client.session_transaction() as sess:
            flows = copy.deepcopy(sess[sso.FLOWS_KEY])
            flows[-1]["nonce"] = "not-the-nonce-sent-to-the-provider"
            sess[sso.FLOWS_KEY] = flows
        return query

    status, code, _message = refusal(sign_in("alice", query_hook=swap_nonce))

    assert (status, code) == (400, "nonce_mismatch")
    db.refresh(invited)
    assert invited.oid is None
    assert user_count(db) == before
    assert signed_out(client)


def test_state_mismatch_is_refused_and_the_real_sign_in_still_completes(
    client, db, make_user, oidc_provider
):
    invited = invite(make_user, "alice@example.test")
    auth_url = client.get("/auth/sso/start").headers["Location"]
    query = oidc_provider.sign_in(auth_url, "alice")

    status, code, _message = refusal(
        client.get("/auth/redirect", query_string={**query, "state": "forged"})
    )

    assert (status, code) == (400, "state_mismatch")
    db.refresh(invited)
    assert invited.oid is None
    assert signed_out(client)
    # a forged redirect must not cancel the sign-in in progress: only the used flow is cleared
    assert client.get("/auth/redirect", query_string=query).status_code == 302
    assert client.get(HOME).status_code == 200


def test_replayed_authorization_code_is_refused(app, client, db, make_user, oidc_provider):
    invite(make_user, "alice@example.test")
    auth_url = client.get("/auth/sso/start").headers["Location"]
    with client.session_transaction() as sess:
        stolen_flows = copy.deepcopy(sess[sso.FLOWS_KEY])
    query = oidc_provider.sign_in(auth_url, "alice")
    assert client.get("/auth/redirect", query_string=query).status_code == 302  # the real sign-in

    # replayed in the same browser: the flow is spent
    assert refusal(client.get("/auth/redirect", query_string=query))[:2] == (400, "no_flow")

    # replayed by someone holding the whole pending flow: the provider refuses the spent code
    attacker = app.test_client()
    with attacker.session_transaction() as sess:
        sess[sso.FLOWS_KEY] = stolen_flows
    before = user_count(db)
    status, code, _message = refusal(attacker.get("/auth/redirect", query_string=query))
    assert (status, code) == (400, "provider_error")
    assert user_count(db) == before
    assert signed_out(attacker)


def test_redirect_without_a_sign_in_in_progress(client, db):
    before = user_count(db)
    status, code, _message = refusal(
        client.get("/auth/redirect", query_string={"code": "x", "state": "y"})
    )
    assert (status, code) == (400, "no_flow")
    assert user_count(db) == before


def test_provider_error_in_the_redirect(client, oidc_provider):
    client.get("/auth/sso/start")
    with client.session_transaction() as sess:
        state = sess[sso.FLOWS_KEY][-1]["state"]
    resp = client.get(
        "/auth/redirect",
        query_string={
            "error": "access_denied",
            "state": state,
            "error_description": "the user declined",
        },
    )
    assert refusal(resp)[:2] == (400, "provider_error")
    assert signed_out(client)


def test_user_not_admitted(client, db, sign_in):
    before = user_count(db)

    status, code, message = refusal(sign_in("bob"))  # no invitation; role claims are off

    assert (status, code) == (403, "not_admitted")
    assert "not been admitted" in message
    assert user_count(db) == before
    assert db.scalar(select(User).where(User.email == "bob@example.test")) is None
    assert signed_out(client)


def test_role_claims_are_ignored_when_the_setting_is_off(client, db, sign_in):
    before = user_count(db)
    assert refusal(sign_in("alice"))[:2] == (
        403,
        "not_admitted",
    )  # alice has app roles, not an invitation
    assert user_count(db) == before


def test_deactivated_user_is_refused(client, db, make_user, sign_in):
    invited = invite(make_user, "alice@example.test", "admin")
    set_active(db, None, invited, False)
    db.flush()
    before = user_count(db)

    status, code, message = refusal(sign_in("alice"))

    assert (status, code) == (403, "not_admitted")
    assert "deactivated" in message
    db.refresh(invited)
    assert invited.oid is None  # the binding was rolled back with the refusal
    assert user_count(db) == before
    assert signed_out(client)


def test_tenant_not_allowed(client, db, make_user, sign_in, oidc_provider):
    invited = invite(make_user, "mallory@other.test")
    assert oidc_provider.users["mallory"]["tid"] == OTHER_TENANT
    before = user_count(db)

    status, code, message = refusal(
        sign_in("mallory")
    )  # a GUID authority admits only its own tenant

    assert (status, code) == (400, "tenant_not_allowed")
    assert "organisation may not sign in" in message
    db.refresh(invited)
    assert invited.oid is None
    assert user_count(db) == before
    assert signed_out(client)


@pytest.mark.parametrize(
    "app_settings", [{"SSO_ALLOWED_TENANTS": ("11111111-2222-4333-8444-555555555555",)}]
)
def test_tenant_not_in_the_allowed_list(client, db, make_user, sign_in, app_settings):
    invited = invite(make_user, "alice@example.test")
    assert refusal(sign_in("alice"))[:2] == (400, "tenant_not_allowed")
    db.refresh(invited)
    assert invited.oid is None
    assert signed_out(client)


BAD_NEXT = [
    "//evil.example",
    "//evil.example/path",
    "https://evil.example",
    "http://evil.example/",
    "/\\evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "evil.example",
    " https://evil.example",
]


@pytest.mark.parametrize("target", BAD_NEXT)
def test_open_redirect_next_is_ignored_after_sign_in(client, make_user, sign_in, target):
    invite(make_user, "alice@example.test")
    resp = sign_in("alice", next_path=target)
    assert resp.status_code == 302
    assert resp.headers["Location"] == HOME
    # and when already signed in, /auth/login?next= does not bounce either
    again = client.get("/auth/login", query_string={"next": target})
    assert again.status_code == 302 and again.headers["Location"] == HOME


def test_next_within_the_app_is_followed(make_user, sign_in):
    invite(make_user, "alice@example.test")
    resp = sign_in("alice", next_path="/account/tokens?x=1")
    assert resp.headers["Location"] == "/account/tokens?x=1"


def test_login_page_only_links_safe_next(client):
    html = client.get("/auth/login", query_string={"next": "//evil.example"}).get_data(as_text=True)
    assert "evil.example" not in html
    assert 'id="sso-signin"' in html


# --- session safety ---------------------------------------------------------------------------------


def test_sign_in_starts_a_new_session(client, make_user, sign_in):
    invite(make_user, "alice@example.test")
    client.get("/auth/login")
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker who fixed the session"
        old_csrf = sess.get("csrf_token")
    assert old_csrf

    resp = sign_in("alice")

    assert resp.status_code == 302
    with client.session_transaction() as sess:
        assert "planted" not in sess
        assert sess.get("csrf_token") != old_csrf
        assert sso.FLOWS_KEY not in sess  # the spent flow is gone too
        assert sess["_user_id"]


def test_session_cookie_flags_in_test_environment(client, make_user, sign_in):
    invite(make_user, "alice@example.test")
    resp = sign_in("alice")
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Expires=" in cookie  # a permanent session: the browser drops it at the absolute timeout


def test_session_cookie_is_secure_outside_development(tmp_path, database_url, oidc_provider):
    cfg = make_config(
        tmp_path, database_url, **app_sso_config(oidc_provider), LABELER_ENV="production"
    )
    cfg.pop("TESTING")
    production = create_app(cfg)
    try:
        resp = production.test_client().get(
            "/auth/sso/start"
        )  # stores the pending flow in the session
        cookie = resp.headers["Set-Cookie"]
        assert "; Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    finally:
        production.extensions["labeler_db"].engine.dispose()


@pytest.fixture()
def clock(monkeypatch) -> Clock:
    fake = Clock(1_900_000_000.0)
    monkeypatch.setattr(login_module, "clock", fake)
    return fake


def test_idle_timeout(app, client, make_user, sign_in, clock):
    invite(make_user, "alice@example.test")
    sign_in("alice")
    idle = app.config["SESSION_IDLE_MINUTES"] * 60
    clock.now += idle - 5
    assert client.get(HOME).status_code == 200  # activity renews the idle window
    clock.now += idle - 5
    assert client.get(HOME).status_code == 200
    clock.now += idle + 1
    assert signed_out(client)
    with client.session_transaction() as sess:
        assert "_user_id" not in sess


def test_absolute_timeout_despite_activity(app, client, make_user, sign_in, clock):
    invite(make_user, "alice@example.test")
    sign_in("alice")
    absolute = app.config["SESSION_ABSOLUTE_HOURS"] * 3600
    step = app.config["SESSION_IDLE_MINUTES"] * 60 - 60
    started = clock.now
    while clock.now + step < started + absolute:
        clock.now += step
        assert client.get(HOME).status_code == 200
    clock.now = started + absolute + 1
    assert signed_out(client)


def test_deactivation_ends_an_open_session_at_once(client, db, make_user, sign_in):
    user = invite(make_user, "alice@example.test", "rater")
    sign_in("alice")
    _token, raw = create_token(db, user, user, "script")
    db.flush()
    assert client.get(HOME).status_code == 200
    assert (
        client.get("/api/v1/projects", headers={"Authorization": f"Bearer {raw}"}).status_code
        == 200
    )

    set_active(db, None, user, False)
    db.flush()

    assert signed_out(client)
    with client.session_transaction() as sess:
        assert "_user_id" not in sess  # the session is dropped, not just ignored
    api = client.get("/api/v1/projects", headers={"Authorization": f"Bearer {raw}"})
    assert api.status_code == 401


def _load(app, user_id: str, generation: int | None):
    """The cookie's user loader in a request of its own (its own session, as every request has)."""
    with app.test_request_context():
        if generation is not None:
            flask_session[login_module.GENERATION_KEY] = generation
        return app.login_manager._user_callback(user_id)


def test_user_loader_returns_none_for_inactive_users(app, db, make_user):
    user = make_user("inactive@example.test", "rater")
    generation = user.session_generation
    assert _load(app, str(user.id), generation).id == user.id
    set_active(db, None, user, False)
    db.flush()
    assert _load(app, str(user.id), generation) is None
    assert _load(app, "not-a-number", generation) is None


def test_user_loader_refuses_a_session_of_an_older_generation(app, db, make_user):
    user = make_user("alice@example.test", "rater")
    generation = user.session_generation
    assert _load(app, str(user.id), generation).id == user.id
    end_sessions(db, user)
    assert _load(app, str(user.id), generation) is None
    assert _load(app, str(user.id), None) is None  # a cookie from before generations existed


def test_sign_out_clears_the_session_and_ends_the_provider_session(
    client, make_user, sign_in, oidc_provider
):
    invite(make_user, "alice@example.test")
    browser = requests.Session()  # the provider's cookies, as in one browser
    sign_in("alice", http=browser)
    csrf = CSRF_META.search(client.get(HOME).get_data(as_text=True)).group(1)

    resp = client.post("/auth/logout", data={"csrf_token": csrf})

    assert resp.status_code == 302
    end = urlsplit(resp.headers["Location"])
    discovery = browser.get(oidc_provider.discovery_url, timeout=10).json()
    assert f"{end.scheme}://{end.netloc}{end.path}" == discovery["end_session_endpoint"]
    assert parse_qs(end.query) == {
        "client_id": [oidc_provider.client_id],
        "post_logout_redirect_uri": [oidc_provider.post_logout_redirect_uris[0]],
    }
    with client.session_transaction() as sess:
        assert dict(sess) == {}
    assert signed_out(client)
    page = browser.get(resp.headers["Location"], timeout=10)  # the provider asks to confirm
    assert page.status_code == 200 and "logout" in page.text.lower()


def test_csp_lets_the_sign_out_form_reach_the_provider_only(client, oidc_provider):
    csp = client.get("/auth/login").headers["Content-Security-Policy"]
    form_action = next(d for d in csp.split(";") if d.split()[0] == "form-action").split()[1:]
    provider = urlsplit(oidc_provider.issuer)
    assert form_action == ["'self'", f"{provider.scheme}://{provider.netloc}"]
    assert "base-uri 'none'" in csp


def test_sign_out_needs_the_csrf_token(client, make_user, sign_in):
    invite(make_user, "alice@example.test")
    sign_in("alice")
    assert client.post("/auth/logout").status_code == 400
    assert client.get(HOME).status_code == 200


def test_client_certificate_setting(tmp_path, database_url, oidc_provider):
    """LABELER_SSO_CLIENT_CERTIFICATE: a PEM with key and certificate becomes MSAL's certificate credential."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    from labeler.auth.views import sso_settings

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "labeler")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = tmp_path / "entra.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    cfg = app_sso_config(oidc_provider, SSO_CLIENT_SECRET=None, SSO_CLIENT_CERTIFICATE=str(pem))
    application = create_app(make_config(tmp_path, database_url, **cfg))
    try:
        with application.test_request_context():
            settings = sso_settings()
        assert settings.client_secret is None
        credential = settings.client_credential
        assert "PRIVATE KEY" in credential["private_key"]
        assert credential["public_certificate"].startswith("-----BEGIN CERTIFICATE-----")
        sso._msal_app(settings)  # MSAL accepts it (and computes the thumbprint)

        pem.write_text("not a key")
        with (
            application.test_request_context(),
            pytest.raises(LabelerError, match="private key and the certificate"),
        ):
            sso_settings()
    finally:
        application.extensions["labeler_db"].engine.dispose()
