"""The production sign-in path: LABELER_AZURE_STORAGE_ACCOUNT_URL with DefaultAzureCredential (a
managed identity on Azure), over HTTPS, against Azurite started with --oauth basic.

Offline there is no Entra token endpoint and no managed-identity endpoint, so DefaultAzureCredential
is replaced by a credential that hands out a bearer token of the same shape (issuer sts.windows.net,
audience https://storage.azure.com). Azurite checks the token's issuer, audience and times (not its
signature), so a token for the wrong audience is refused as Azure refuses it.
"""

from __future__ import annotations

import base64
import json
import time
from typing import ClassVar

import azure.identity
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azurite_support.fixtures import ACCOUNT, start_azurite, stop_azurite
from sso_support.certs import make_test_tls

from labeler.images.storage import AzureBlobStorage, storage_from_url


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _token(audience: str) -> str:
    now = int(time.time())
    claims = {
        "iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000000/",
        "aud": audience,
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 3600,
        "oid": "11111111-1111-1111-1111-111111111111",
    }
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


class _Credential:
    """Stands in for DefaultAzureCredential: what it asks for and what it gets back."""

    audience = "https://storage.azure.com"
    scopes: ClassVar[list[tuple[str, ...]]] = []

    def get_token(self, *scopes, **_kwargs) -> AccessToken:
        type(self).scopes.append(scopes)
        return AccessToken(_token(self.audience), int(time.time()) + 3600)


@pytest.fixture(scope="module")
def azurite_oauth(tmp_path_factory):
    work = tmp_path_factory.mktemp("azurite-oauth")
    tls = make_test_tls(work / "tls")
    proc, port = start_azurite(
        work, "--oauth", "basic", "--cert", str(tls.server_cert), "--key", str(tls.server_key)
    )
    try:
        yield port, tls
    finally:
        stop_azurite(proc)


@pytest.fixture()
def store_config(azurite_oauth, monkeypatch, tmp_path):
    port, tls = azurite_oauth
    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", _Credential)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls.bundle))  # trust the test CA (requests)
    return {
        "STORAGE_URL": f"azure://mi-{int(time.time() * 1000) % 10**9}",
        "AZURE_STORAGE_ACCOUNT_URL": f"https://127.0.0.1:{port}/{ACCOUNT}",
        "AZURE_STORAGE_RETRIES": 1,
        "INSTANCE_PATH": str(tmp_path),
    }


def test_account_url_signs_in_with_default_azure_credential(store_config):
    _Credential.scopes.clear()
    store = storage_from_url(store_config["STORAGE_URL"], store_config)
    assert isinstance(store, AzureBlobStorage)
    store.create_container()
    store.put("display/aa/bb/x.jpg", b"pixels")
    assert b"".join(store.stream("display/aa/bb/x.jpg", 1, 3)) == b"ixe"
    assert list(store.iter_keys("display")) == ["display/aa/bb/x.jpg"]
    assert ("https://storage.azure.com/.default",) in _Credential.scopes


def test_a_token_for_another_audience_is_refused(store_config, monkeypatch):
    monkeypatch.setattr(_Credential, "audience", "https://management.azure.com")
    store = storage_from_url(store_config["STORAGE_URL"], store_config)
    with pytest.raises(HttpResponseError) as err:
        store.create_container()
    assert err.value.status_code == 403
