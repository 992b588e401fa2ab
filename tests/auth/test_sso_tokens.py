"""ID-token validation in labeler.auth.sso with locally made keys; no network, no provider."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from labeler.auth import sso

TENANT = "3f2a1b0c-9d8e-4f7a-8b6c-5d4e3f2a1b0c"
OTHER = "9e8d7c6b-5a4f-4e3d-9c2b-1a0f9e8d7c6b"
CLIENT_ID = "client-123"
ISSUER = f"https://login.example.test/{TENANT}/v2.0"
JWKS_URI = "https://login.example.test/keys"
DISCOVERY = {"issuer": ISSUER, "jwks_uri": JWKS_URI}
MULTI = {"issuer": "https://login.example.test/{tenantid}/v2.0", "jwks_uri": JWKS_URI}
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def public_jwk(key: Any, kid: str, **extra: Any) -> dict[str, Any]:
    algorithm = (
        jwt.algorithms.RSAAlgorithm
        if isinstance(key, rsa.RSAPrivateKey)
        else jwt.algorithms.ECAlgorithm
    )
    return {**json.loads(algorithm.to_jwk(key.public_key())), "kid": kid, **extra}


def settings(**overrides: Any) -> sso.SSOSettings:
    values: dict[str, Any] = {
        "authority": f"https://login.example.test/{TENANT}",
        "client_id": CLIENT_ID,
        "client_secret": "s3cret",
        "redirect_uri": "https://labeler.example.test/auth/redirect",
    }
    return sso.SSOSettings(**{**values, **overrides})


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "sub": "sub-1",
        "oid": "oid-1",
        "tid": TENANT,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "nonce": "n-1",
        "name": "Ada",
        "preferred_username": "ada@example.test",
        "roles": ["Labeler"],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, Any], key: Any = RSA_KEY, kid: str = "k1", alg: str = "RS256") -> str:
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})


class FakeJWKS:
    """A JWKS endpoint whose keys the test can change; counts fetches."""

    def __init__(self, *keys: dict[str, Any]) -> None:
        self.keys = list(keys)
        self.fetches = 0

    def __call__(self, url: str) -> dict[str, Any]:
        assert url == JWKS_URI
        self.fetches += 1
        return {"keys": list(self.keys)}


@pytest.fixture
def endpoint() -> FakeJWKS:
    return FakeJWKS(public_jwk(RSA_KEY, "k1"), public_jwk(EC_KEY, "e1"))


@pytest.fixture
def validate(endpoint: FakeJWKS) -> Callable[..., dict[str, Any]]:
    cache = sso.JWKSCache(fetch=endpoint)

    def run(token: str, config: sso.SSOSettings | None = None, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("discovery", DISCOVERY)
        return sso.validate_id_token(config or settings(), token, jwks=cache, **kwargs)

    return run


def error_code(call: Callable[[], object]) -> str:
    with pytest.raises(sso.SSOError) as err:
        call()
    return err.value.code


def test_valid_token(validate) -> None:
    result = validate(sign(claims()), nonce="n-1")
    assert (result["oid"], result["tid"]) == ("oid-1", TENANT)


def test_ec_key(validate) -> None:
    assert validate(sign(claims(), EC_KEY, "e1", "ES256"))["sub"] == "sub-1"


@pytest.mark.parametrize(
    ("token_claims", "code"),
    [
        (claims(aud="someone-else"), "wrong_audience"),
        (claims(iss=f"https://login.example.test/{OTHER}/v2.0"), "wrong_issuer"),
        (claims(exp=int(time.time()) - 61 - 5), "expired"),
        (claims(nbf=int(time.time()) + 3600), "not_yet_valid"),
        (claims(iat=int(time.time()) + 3600), "not_yet_valid"),
        (claims(tid=None), "missing_claim"),
        (claims(exp=None), "missing_claim"),
        (claims(tid=OTHER), "tenant_not_allowed"),  # GUID authority pins its tenant
    ],
)
def test_rejected_claims(validate, token_claims: dict, code: str) -> None:
    assert error_code(lambda: validate(sign(token_claims))) == code


def test_clock_skew_is_tolerated(validate) -> None:
    now = int(time.time())
    validate(sign(claims(exp=now - 30, nbf=now + 30, iat=now + 30)))
    strict = settings(clock_skew_seconds=0)
    assert error_code(lambda: validate(sign(claims(exp=now - 30)), strict)) == "expired"


def test_forged_signature(validate) -> None:
    assert error_code(lambda: validate(sign(claims(), OTHER_RSA_KEY))) == "invalid_signature"


def test_tampered_payload(validate) -> None:
    header, _, signature = sign(claims()).split(".")
    payload = jwt.utils.base64url_encode(json.dumps(claims(roles=["Admin"])).encode()).decode()
    token = f"{header}.{payload}.{signature}"
    assert error_code(lambda: validate(token)) == "invalid_signature"


def test_unsigned_and_symmetric_tokens_are_refused(validate) -> None:
    unsigned = jwt.encode(claims(), None, algorithm="none", headers={"kid": "k1"})
    assert error_code(lambda: validate(unsigned)) == "invalid_token"
    public_pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # Algorithm confusion: HMAC keyed with the public key. PyJWT refuses to even make it,
    # so assemble it by hand.
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","kid":"k1","typ":"JWT"}')
    body = jwt.utils.base64url_encode(json.dumps(claims()).encode())
    import hashlib
    import hmac

    mac = hmac.new(public_pem, header + b"." + body, hashlib.sha256).digest()
    confused = b".".join([header, body, jwt.utils.base64url_encode(mac)]).decode()
    assert error_code(lambda: validate(confused)) == "invalid_token"


def test_header_alg_must_match_the_key(validate) -> None:
    token = sign(claims(), RSA_KEY, "k1", "PS256")  # the JWK says RS256 (PyJWT's RSA default)
    assert error_code(lambda: validate(token)) == "invalid_token"


def test_missing_kid(validate) -> None:
    token = jwt.encode(claims(), RSA_KEY, algorithm="RS256")
    assert error_code(lambda: validate(token)) == "invalid_token"


def test_not_a_jwt(validate) -> None:
    assert error_code(lambda: validate("not.a.jwt")) == "invalid_token"


def test_nonce(validate) -> None:
    assert error_code(lambda: validate(sign(claims()), nonce="other")) == "nonce_mismatch"
    assert error_code(lambda: validate(sign(claims(nonce=None)), nonce="n-1")) == "nonce_mismatch"


def test_several_audiences_need_azp(validate) -> None:
    both = [CLIENT_ID, "api://other"]
    assert error_code(lambda: validate(sign(claims(aud=both)))) == "wrong_audience"
    assert validate(sign(claims(aud=both, azp=CLIENT_ID)))["azp"] == CLIENT_ID


def test_multi_tenant_issuer_uses_the_tokens_tenant(validate) -> None:
    config = settings(authority="https://login.example.test/organizations")
    token = sign(claims(iss=f"https://login.example.test/{OTHER}/v2.0", tid=OTHER))
    assert validate(token, config, discovery=MULTI)["tid"] == OTHER  # any tenant: none listed


def test_multi_tenant_issuer_must_match_tid(validate) -> None:
    config = settings(authority="https://login.example.test/organizations")
    spoof = sign(claims(iss=f"https://login.example.test/{OTHER}/v2.0", tid=TENANT))
    assert error_code(lambda: validate(spoof, config, discovery=MULTI)) == "wrong_issuer"
    no_guid = sign(claims(iss="https://login.example.test/x/v2.0", tid="x"))
    assert error_code(lambda: validate(no_guid, config, discovery=MULTI)) == "wrong_issuer"


def test_multi_tenant_allowed_tenants(validate) -> None:
    config = settings(authority="https://login.example.test/common", allowed_tenants=(TENANT,))
    validate(sign(claims()), config, discovery=MULTI)
    other = sign(claims(iss=f"https://login.example.test/{OTHER}/v2.0", tid=OTHER))
    assert error_code(lambda: validate(other, config, discovery=MULTI)) == "tenant_not_allowed"


def test_domain_authority_relies_on_the_issuer(validate) -> None:
    config = settings(authority="https://login.example.test/contoso.example")
    assert validate(sign(claims()), config)["tid"] == TENANT


def test_jwks_is_cached(validate, endpoint: FakeJWKS) -> None:
    validate(sign(claims()))
    validate(sign(claims()))
    assert endpoint.fetches == 1


def test_jwks_expires(endpoint: FakeJWKS) -> None:
    now = [1000.0]
    cache = sso.JWKSCache(fetch=endpoint, clock=lambda: now[0])
    cache.signing_key(JWKS_URI, "k1", max_age=60)
    now[0] += 59
    cache.signing_key(JWKS_URI, "k1", max_age=60)
    assert endpoint.fetches == 1
    now[0] += 2
    cache.signing_key(JWKS_URI, "k1", max_age=60)
    assert endpoint.fetches == 2


def test_unknown_kid_refreshes_once(validate, endpoint: FakeJWKS) -> None:
    validate(sign(claims()))
    endpoint.keys.append(public_jwk(OTHER_RSA_KEY, "k2"))  # the provider rotates
    validate(sign(claims(), OTHER_RSA_KEY, "k2"))
    assert endpoint.fetches == 2
    assert error_code(lambda: validate(sign(claims(), OTHER_RSA_KEY, "k3"))) == "invalid_signature"
    assert endpoint.fetches == 3


def test_encryption_keys_are_not_used_for_signatures() -> None:
    endpoint = FakeJWKS(public_jwk(RSA_KEY, "k1", use="enc"))
    cache = sso.JWKSCache(fetch=endpoint)
    assert error_code(lambda: cache.signing_key(JWKS_URI, "k1", 60)) == "invalid_signature"


def test_identity_from_claims() -> None:
    identity = sso.Identity.from_claims(claims())
    assert identity == sso.Identity(
        oid="oid-1",
        tenant_id=TENANT,
        email="ada@example.test",
        name="Ada",
        roles=("Labeler",),
        claims={},
    )
    fallback = sso.Identity.from_claims(
        claims(oid=None, preferred_username=None, upn="ada@upn.test", roles=None, name=None)
    )
    assert (fallback.oid, fallback.email, fallback.roles, fallback.name) == (
        "sub-1",
        "ada@upn.test",
        (),
        None,
    )
    assert sso.Identity.from_claims(claims(email="e@example.test")).email == "e@example.test"
    assert error_code(lambda: sso.Identity.from_claims(claims(roles="Admin"))) == "invalid_token"


def test_settings_validation() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        settings(client_secret=None)
    with pytest.raises(ValueError, match="exactly one"):
        settings(client_certificate={"private_key": "k", "thumbprint": "t"})
    with pytest.raises(ValueError, match="https"):
        settings(authority=f"http://login.example.test/{TENANT}")
    with pytest.raises(ValueError, match="https"):
        settings(authority="https://login.example.test/")
    config = settings(
        authority=f"https://login.example.test/{TENANT.upper()}/", allowed_tenants=[OTHER.upper()]
    )
    assert config.authority == f"https://login.example.test/{TENANT.upper()}"
    assert config.tenant == TENANT
    assert config.allowed_tenants == (OTHER,)
    assert config.discovery_url == f"{config.authority}/v2.0/.well-known/openid-configuration"
    assert "s3cret" not in repr(config)
    cert = settings(client_secret=None, client_certificate={"private_key": "k", "thumbprint": "t"})
    assert cert.client_credential == {"private_key": "k", "thumbprint": "t"}


def test_http_client_always_sets_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    def fake_request(self: requests.Session, method: str, url: str, **kwargs: Any) -> None:
        seen.append(kwargs.get("timeout"))

    monkeypatch.setattr(requests.Session, "request", fake_request)
    sso.HTTP.get("https://example.test/")
    sso.HTTP.post("https://example.test/", timeout=None)
    sso.HTTP.get("https://example.test/", timeout=3)
    assert seen == [sso.HTTP_TIMEOUT, sso.HTTP_TIMEOUT, 3]


def test_unreachable_provider_is_an_sso_error() -> None:
    config = settings(authority="https://127.0.0.1:9/tenant")  # discard port: refused
    assert error_code(lambda: sso.discover(config)) == "provider_unreachable"
