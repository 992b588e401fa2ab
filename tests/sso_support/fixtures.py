"""pytest plugin: a throwaway CA, trust in it, and the local OpenID provider (all session-scoped).

Register in tests/conftest.py with `pytest_plugins = ["sso_support.fixtures"]`. Override
`sso_users`, `sso_redirect_uris` or `sso_post_logout_redirect_uris` (session scope) to change what
the provider knows, e.g. to register a live app server's /auth/redirect.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from labeler.auth.sso import SSOSettings

from .certs import TLSFiles, make_test_tls
from .provider import (
    DEFAULT_TENANT,
    OTHER_TENANT,
    TAMPER_MODES,
    OIDCProvider,
    ProviderNotInstalled,
    check_installed,
)

SSO_REDIRECT_URI = "http://127.0.0.1:5000/auth/redirect"
SSO_POST_LOGOUT_REDIRECT_URI = "http://127.0.0.1:5000/"


def default_users() -> dict[str, dict[str, Any]]:
    """alice (app roles Labeler.Admin, Labeler.Lead), bob (no roles), mallory (another tenant),
    and a user "tamper-<mode>" for each tamper mode."""
    users: dict[str, dict[str, Any]] = {
        "alice": {
            "password": "alice-pw",
            "name": "Alice Example",
            "email": "alice@example.test",
            "roles": ["Labeler.Admin", "Labeler.Lead"],
        },
        "bob": {"password": "bob-pw", "name": "Bob Example", "email": "bob@example.test"},
        "mallory": {
            "password": "mallory-pw",
            "name": "Mallory Guest",
            "email": "mallory@other.test",
            "tid": OTHER_TENANT,
        },
    }
    for mode in sorted(TAMPER_MODES):
        users[f"tamper-{mode}"] = {
            "password": "tamper-pw",
            "name": f"Tamper {mode}",
            "email": f"{mode}@example.test",
            "tamper": mode,
        }
    return users


def app_sso_config(provider: OIDCProvider, **extra: Any) -> dict[str, Any]:
    """The app's LABELER_SSO_* settings for a provider (as with Entra, only the authority differs)."""
    return {
        "AUTH_MODE": "sso",
        "SSO_AUTHORITY": provider.authority,
        "SSO_CLIENT_ID": provider.client_id,
        "SSO_CLIENT_SECRET": provider.client_secret,
        "SSO_REDIRECT_URI": provider.redirect_uris[0],
        "SSO_POST_LOGOUT_REDIRECT_URI": (provider.post_logout_redirect_uris or (None,))[0],
        **extra,
    }


@pytest.fixture(scope="session")
def sso_tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A fresh EC test CA, a server cert for 127.0.0.1/localhost, and a system + test CA bundle."""
    return make_test_tls(tmp_path_factory.mktemp("sso-tls"))


@pytest.fixture(scope="session")
def trust_test_ca(sso_tls: TLSFiles) -> Iterator[TLSFiles]:
    """Point REQUESTS_CA_BUNDLE at the bundle and unset CURL_CA_BUNDLE; restore both afterwards.

    requests lets these variables override Session.verify, and so MSAL's verify=.
    """
    saved = {name: os.environ.get(name) for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    os.environ["REQUESTS_CA_BUNDLE"] = str(sso_tls.bundle)
    os.environ.pop("CURL_CA_BUNDLE", None)
    try:
        yield sso_tls
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def sso_users() -> Mapping[str, Mapping[str, Any]]:
    return default_users()


@pytest.fixture(scope="session")
def sso_redirect_uris() -> tuple[str, ...]:
    return (SSO_REDIRECT_URI,)


@pytest.fixture(scope="session")
def sso_post_logout_redirect_uris() -> tuple[str, ...]:
    return (SSO_POST_LOGOUT_REDIRECT_URI,)


@pytest.fixture(scope="session")
def oidc_provider(
    trust_test_ca: TLSFiles,
    sso_users: Mapping[str, Mapping[str, Any]],
    sso_redirect_uris: tuple[str, ...],
    sso_post_logout_redirect_uris: tuple[str, ...],
) -> Iterator[OIDCProvider]:
    """The local Entra-shaped provider (login form, no auto-login), trusted via trust_test_ca."""
    try:
        check_installed()
    except ProviderNotInstalled as exc:
        pytest.fail(f"SSO test provider unavailable: {exc}", pytrace=False)
    with OIDCProvider(
        sso_users,
        sso_redirect_uris,
        tls=trust_test_ca,
        tenant=DEFAULT_TENANT,
        post_logout_redirect_uris=sso_post_logout_redirect_uris,
    ) as provider:
        yield provider


@pytest.fixture(scope="session")
def sso_settings(oidc_provider: OIDCProvider) -> SSOSettings:
    """SSOSettings for the app, pointing at oidc_provider (its first redirect URIs)."""
    return SSOSettings(
        authority=oidc_provider.authority,
        client_id=oidc_provider.client_id,
        client_secret=oidc_provider.client_secret,
        redirect_uri=oidc_provider.redirect_uris[0],
        post_logout_redirect_uri=(oidc_provider.post_logout_redirect_uris or (None,))[0],
    )
