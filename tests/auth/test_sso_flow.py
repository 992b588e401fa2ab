"""labeler.auth.sso against a real OpenID provider, with a requests.Session as the browser."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from sso_support.provider import OTHER_TENANT, REFUSED_TOKENS, OIDCProvider, SignInFailed

from labeler.auth import sso

pytest_plugins = ["sso_support.fixtures"]


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    sso.clear_caches()
    yield
    sso.clear_caches()


@pytest.fixture
def login(
    oidc_provider: OIDCProvider, sso_settings: sso.SSOSettings
) -> Callable[..., tuple[dict[str, Any], dict[str, str]]]:
    """Start a login and sign in at the provider; return (store, redirect query args)."""

    def run(username: str, settings: sso.SSOSettings = sso_settings) -> tuple[dict, dict]:
        store: dict[str, Any] = {}
        auth_url = sso.begin_login(settings, store)
        return store, oidc_provider.sign_in(auth_url, username)

    return run


def test_good_login_returns_identity(login, sso_settings, oidc_provider) -> None:
    store, query = login("alice")
    assert query["iss"] == oidc_provider.issuer  # RFC 9207 parameter, checked by complete_login

    identity = sso.complete_login(sso_settings, store, query)

    assert identity.oid == oidc_provider.users["alice"]["oid"]
    assert identity.tenant_id == oidc_provider.tenant
    assert identity.roles == ("Labeler.Admin", "Labeler.Lead")
    assert (identity.name, identity.email) == ("Alice Example", "alice@example.test")
    assert identity.claims["ver"] == "2.0"
    assert identity.claims["iss"] == oidc_provider.issuer
    assert store[sso.FLOWS_KEY] == []  # the flow is spent


def test_user_without_roles(login, sso_settings) -> None:
    store, query = login("bob")
    assert sso.complete_login(sso_settings, store, query).roles == ()


def test_auth_url_uses_pkce_state_and_nonce(sso_settings, oidc_provider) -> None:
    store: dict[str, Any] = {}
    params = parse_qs(urlsplit(sso.begin_login(sso_settings, store)).query)
    (flow,) = store[sso.FLOWS_KEY]
    assert params["code_challenge_method"] == ["S256"]
    assert params["state"] == [flow["state"]]
    assert params["nonce"] and params["nonce"] != [flow["nonce"]]  # MSAL sends a hash
    assert params["client_id"] == [oidc_provider.client_id]
    assert "prompt" not in params and "login_hint" not in params
    hinted = sso.begin_login(sso_settings, store, prompt="login", login_hint="alice")
    assert parse_qs(urlsplit(hinted).query)["prompt"] == ["login"]
    assert len(store[sso.FLOWS_KEY]) == 2


def test_wrong_password_shows_the_form_error(sso_settings, oidc_provider) -> None:
    auth_url = sso.begin_login(sso_settings, {})
    with pytest.raises(SignInFailed, match="Wrong user name or password"):
        oidc_provider.sign_in(auth_url, "alice", "not-the-password")


def test_two_logins_in_flight_both_complete(sso_settings, oidc_provider) -> None:
    store: dict[str, Any] = {}
    first = sso.begin_login(sso_settings, store)
    second = sso.begin_login(sso_settings, store)
    query_second = oidc_provider.sign_in(second, "bob")
    query_first = oidc_provider.sign_in(first, "alice")
    assert sso.complete_login(sso_settings, store, query_second).name == "Bob Example"
    assert sso.complete_login(sso_settings, store, query_first).name == "Alice Example"


def test_state_mismatch(login, sso_settings) -> None:
    store, query = login("alice")
    with pytest.raises(sso.SSOError) as err:
        sso.complete_login(sso_settings, store, {**query, "state": "forged"})
    assert err.value.code == "state_mismatch"
    assert len(store[sso.FLOWS_KEY]) == 1  # a forged redirect does not cancel the real login
    assert sso.complete_login(sso_settings, store, query).oid


def test_nonce_mismatch(login, sso_settings) -> None:
    store, query = login("alice")
    store[sso.FLOWS_KEY][0]["nonce"] = "a-different-nonce"
    with pytest.raises(sso.SSOError) as err:
        sso.complete_login(sso_settings, store, query)
    assert err.value.code == "nonce_mismatch"


def test_replayed_code_is_refused_by_the_provider(login, sso_settings) -> None:
    store, query = login("alice")
    saved = copy.deepcopy(store)
    sso.complete_login(sso_settings, store, query)

    with pytest.raises(sso.SSOError) as err:
        sso.complete_login(sso_settings, store, query)  # the flow is spent
    assert err.value.code == "no_flow"

    with pytest.raises(sso.SSOError) as err:
        sso.complete_login(sso_settings, saved, query)  # even with the flow put back
    assert err.value.code == "provider_error"
    assert "invalid_grant" in err.value.message


def test_wrong_pkce_verifier_is_refused_by_the_provider(login, sso_settings) -> None:
    store, query = login("alice")
    store[sso.FLOWS_KEY][0]["code_verifier"] = "x" * 50
    with pytest.raises(sso.SSOError) as err:
        sso.complete_login(sso_settings, store, query)
    assert (err.value.code, "invalid_grant" in err.value.message) == ("provider_error", True)


def test_wrong_client_secret_is_refused_by_the_provider(login, sso_settings) -> None:
    bad = sso.SSOSettings(**{**vars(sso_settings), "client_secret": "wrong"})
    store, query = login("alice")
    with pytest.raises(sso.SSOError) as err:
        sso.complete_login(bad, store, query)
    assert (err.value.code, "invalid_client" in err.value.message) == ("provider_error", True)


def test_error_in_redirect_is_provider_error(sso_settings) -> None:
    store: dict[str, Any] = {}
    sso.begin_login(sso_settings, store)
    state = store[sso.FLOWS_KEY][0]["state"]
    with pytest.raises(sso.SSOError) as err:
        sso.complete_login(
            sso_settings,
            store,
            {"state": state, "error": "access_denied", "error_description": "user cancelled"},
        )
    assert err.value.code == "provider_error"
    assert "access_denied" in err.value.message


def test_redirect_from_another_issuer(login, sso_settings) -> None:
    store, query = login("alice")
    with pytest.raises(sso.SSOError) as err:
        sso.complete_login(sso_settings, store, {**query, "iss": "https://evil.test/v2.0"})
    assert err.value.code == "wrong_issuer"


def test_no_login_in_progress(sso_settings) -> None:
    with pytest.raises(sso.SSOError) as err:
        sso.complete_login(sso_settings, {}, {"code": "x", "state": "y"})
    assert err.value.code == "no_flow"


@pytest.mark.parametrize(("tamper", "code"), REFUSED_TOKENS)
def test_bad_id_token_from_provider(login, sso_settings, tamper: str, code: str) -> None:
    store, query = login(f"tamper-{tamper}")
    with pytest.raises(sso.SSOError) as err:
        sso.complete_login(sso_settings, store, query)
    assert err.value.code == code


def test_tenant_not_allowed_by_setting(login, sso_settings) -> None:
    only_other = sso.SSOSettings(**{**vars(sso_settings), "allowed_tenants": (OTHER_TENANT,)})
    store, query = login("alice", only_other)
    with pytest.raises(sso.SSOError) as err:
        sso.complete_login(only_other, store, query)
    assert err.value.code == "tenant_not_allowed"


def test_foreign_tenant_refused_by_guid_authority(login, sso_settings) -> None:
    store, query = login("mallory")  # tid is another tenant's; allowed_tenants is empty
    with pytest.raises(sso.SSOError) as err:
        sso.complete_login(sso_settings, store, query)
    assert err.value.code == "tenant_not_allowed"


def test_foreign_tenant_allowed_when_listed(login, sso_settings) -> None:
    both = sso.SSOSettings(
        **{**vars(sso_settings), "allowed_tenants": (sso_settings.tenant, OTHER_TENANT.upper())}
    )
    store, query = login("mallory", both)
    assert sso.complete_login(both, store, query).tenant_id == OTHER_TENANT


@pytest.fixture
def jwks_fetches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    fetched: list[str] = []

    def fetch(url: str) -> dict[str, Any]:
        fetched.append(url)
        return sso._get_json(url)

    monkeypatch.setattr(sso, "JWKS_CACHE", sso.JWKSCache(fetch=fetch))
    return fetched


def test_jwks_cached_then_refreshed_on_unknown_kid(login, sso_settings, jwks_fetches) -> None:
    for _ in range(2):
        store, query = login("alice")
        sso.complete_login(sso_settings, store, query)
    assert len(jwks_fetches) == 1  # cached

    store, query = login("tamper-rotated_key")  # signed with a key the provider now publishes
    assert sso.complete_login(sso_settings, store, query).name == "Tamper rotated_key"
    assert len(jwks_fetches) == 2

    store, query = login("tamper-unknown_kid")  # a kid the provider never publishes
    with pytest.raises(sso.SSOError) as err:
        sso.complete_login(sso_settings, store, query)
    assert err.value.code == "invalid_signature"
    assert len(jwks_fetches) == 3  # refreshed once, not in a loop


def _form(html: str) -> tuple[str, dict[str, str]]:
    action = re.search(r'<form[^>]*action="([^"]+)"', html)
    assert action, html
    fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html))
    return action.group(1), fields


def test_end_session_url_signs_out_and_redirects(login, sso_settings, oidc_provider) -> None:
    url = sso.end_session_url(sso_settings)
    assert url is not None
    endpoint = requests.get(oidc_provider.discovery_url, timeout=10).json()["end_session_endpoint"]
    assert url.startswith(endpoint + "?")
    assert parse_qs(urlsplit(url).query) == {
        "client_id": [sso_settings.client_id],
        "post_logout_redirect_uri": [sso_settings.post_logout_redirect_uri],
    }

    browser = requests.Session()
    auth_url = sso.begin_login(sso_settings, store := {})
    sso.complete_login(sso_settings, store, oidc_provider.sign_in(auth_url, "alice", http=browser))
    page = browser.get(url, timeout=10)
    assert page.status_code == 200  # the provider's "sign out?" confirmation
    action, fields = _form(page.text)
    done = browser.post(
        urljoin(page.url, action),
        data={**fields, "logout": "yes"},
        allow_redirects=False,
        timeout=10,
    )
    assert done.status_code in (302, 303)
    assert done.headers["Location"] == sso_settings.post_logout_redirect_uri


def test_end_session_url_explicit_redirect(sso_settings) -> None:
    url = sso.end_session_url(sso_settings, "http://127.0.0.1:5000/bye")
    assert url is not None
    assert parse_qs(urlsplit(url).query)["post_logout_redirect_uri"] == [
        "http://127.0.0.1:5000/bye"
    ]


def test_provider_auto_login(trust_test_ca, sso_users, sso_redirect_uris) -> None:
    with OIDCProvider(
        sso_users, sso_redirect_uris, tls=trust_test_ca, auto_login="bob"
    ) as provider:
        settings = sso.SSOSettings(
            authority=provider.authority,
            client_id=provider.client_id,
            client_secret=provider.client_secret,
            redirect_uri=sso_redirect_uris[0],
        )
        store: dict[str, Any] = {}
        query = provider.sign_in(sso.begin_login(settings, store))  # no form, no username
        assert sso.complete_login(settings, store, query).name == "Bob Example"
