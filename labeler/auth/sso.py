"""Microsoft Entra ID sign-in: MSAL's auth-code flow (PKCE, state, nonce) plus ID-token validation.

MSAL checks state and nonce but not the ID token's signature, issuer, audience or lifetime, so
`complete_login` validates the raw ID token itself with PyJWT against the provider's JWKS.

No Flask here: the functions take an `SSOSettings` and a dict-like `store` (the Flask session in
the app, a plain dict in tests) and raise `SSOError` for every failed sign-in.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt
import msal
import requests

log = logging.getLogger(__name__)

FLOWS_KEY = "sso.flows"  # key in the store: a list of pending MSAL auth-code flows
MAX_PENDING_FLOWS = 3  # logins started in other tabs; small, as the store may be a cookie
HTTP_TIMEOUT = (5.0, 15.0)  # seconds: connect, read
# Asymmetric algorithms only; each key's own algorithm must also match the token's header.
ID_TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
REQUIRED_CLAIMS = ("iss", "aud", "sub", "tid", "exp", "iat")
TENANT_PLACEHOLDER = "{tenantid}"  # in the issuer of Entra's multi-tenant discovery documents
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


class SSOError(Exception):
    """A sign-in that must not go through; `code` is a short machine-readable reason.

    Codes: no_flow, state_mismatch, nonce_mismatch, provider_error, provider_unreachable,
    invalid_response, invalid_token, invalid_signature, wrong_audience, wrong_issuer, expired,
    not_yet_valid, missing_claim, tenant_not_allowed.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, kw_only=True)
class SSOSettings:
    """What the app knows about its Entra registration.

    authority: https://login.microsoftonline.com/<tenant> where <tenant> is a tenant GUID, a
        verified domain, or "organizations"/"common" for a multi-tenant app.
    client_secret or client_certificate: exactly one; the certificate is MSAL's client_credential
        dict ({"private_key": PEM, "thumbprint": hex, ...}).
    allowed_tenants: tenant GUIDs whose users may sign in. Empty means: for a single-tenant
        authority only that tenant (the discovered issuer names it, and a GUID authority is also
        compared with `tid`); for "organizations"/"common" ANY Entra tenant, so set it there.
    scopes: extra scopes. MSAL always adds openid, profile and offline_access, and refuses
        them in this list.
    """

    authority: str
    client_id: str
    redirect_uri: str
    client_secret: str | None = field(default=None, repr=False)
    client_certificate: Mapping[str, str] | None = field(default=None, repr=False)
    allowed_tenants: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    jwks_cache_seconds: int = 3600
    clock_skew_seconds: int = 60
    post_logout_redirect_uri: str | None = None

    def __post_init__(self) -> None:
        if (self.client_secret is None) == (self.client_certificate is None):
            raise ValueError("set exactly one of client_secret and client_certificate")
        authority = self.authority.rstrip("/")
        parts = urlsplit(authority)
        if parts.scheme != "https" or not parts.netloc or parts.path.strip("/") == "":
            raise ValueError(f"authority must be https://<host>/<tenant>, got {self.authority!r}")
        object.__setattr__(self, "authority", authority)
        object.__setattr__(self, "allowed_tenants", tuple(t.lower() for t in self.allowed_tenants))
        object.__setattr__(self, "scopes", tuple(self.scopes))

    @property
    def client_credential(self) -> str | dict[str, str]:
        if self.client_secret is not None:
            return self.client_secret
        return dict(self.client_certificate or {})

    @property
    def tenant(self) -> str:
        """The authority's last path segment: a tenant GUID, a domain, or organizations/common."""
        return urlsplit(self.authority).path.rstrip("/").rsplit("/", 1)[-1].lower()

    @property
    def discovery_url(self) -> str:
        return f"{self.authority}/v2.0/.well-known/openid-configuration"


@dataclass(frozen=True)
class Identity:
    """The signed-in user from a validated ID token. Key accounts on (tenant_id, oid), not email."""

    oid: str
    tenant_id: str
    email: str | None
    name: str | None
    roles: tuple[str, ...]
    claims: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Identity:
        roles = claims.get("roles") or ()
        if not isinstance(roles, list | tuple) or not all(isinstance(r, str) for r in roles):
            raise SSOError("invalid_token", "the roles claim is not a list of strings")
        return cls(
            oid=claims.get("oid") or claims["sub"],
            tenant_id=claims["tid"],
            email=claims.get("email") or claims.get("preferred_username") or claims.get("upn"),
            name=claims.get("name"),
            roles=tuple(roles),
            claims=dict(claims),
        )


class _HTTPClient(requests.Session):
    """A requests.Session that never sends a request without a timeout."""

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = HTTP_TIMEOUT
        return super().request(method, url, *args, **kwargs)


# The one HTTP client for discovery, JWKS and MSAL's token requests. It honours
# REQUESTS_CA_BUNDLE (trust_env), which the tests point at a bundle holding their CA.
HTTP = _HTTPClient()


def _get_json(url: str) -> dict[str, Any]:
    try:
        response = HTTP.get(url, headers={"Accept": "application/json"})
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise SSOError("provider_unreachable", f"GET {url} failed: {exc}") from exc
    if not isinstance(document, dict):
        raise SSOError("provider_unreachable", f"GET {url} did not return a JSON object")
    return document


class _TTLCache:
    """Documents per URL for max_age seconds; thread-safe."""

    def __init__(self, fetch: Callable[[str], Any], clock: Callable[[], float]) -> None:
        self._fetch = fetch
        self._clock = clock
        self._entries: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, url: str, max_age: float, *, refresh: bool = False) -> tuple[Any, bool]:
        """Return (value, fetched_now)."""
        with self._lock:
            entry = self._entries.get(url)
            if entry is not None and not refresh and self._clock() - entry[0] < max_age:
                return entry[1], False
            value = self._fetch(url)
            self._entries[url] = (self._clock(), value)
            return value, True

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _parse_jwks(document: Mapping[str, Any]) -> dict[str, jwt.PyJWK]:
    keys: dict[str, jwt.PyJWK] = {}
    for data in document.get("keys") or ():
        if not isinstance(data, dict) or data.get("use", "sig") != "sig" or not data.get("kid"):
            continue
        try:
            keys[data["kid"]] = jwt.PyJWK(data)
        except jwt.PyJWKError as exc:
            log.warning("ignoring JWKS key %s that PyJWT cannot use: %s", data.get("kid"), exc)
    return keys


class JWKSCache:
    """Signing keys per jwks_uri, kept for max_age seconds and refetched once on an unknown kid.

    ID tokens reach us only from the token endpoint over TLS, so an unknown kid cannot be
    replayed by an outsider to make us hammer the JWKS endpoint.
    """

    def __init__(
        self,
        fetch: Callable[[str], Mapping[str, Any]] = _get_json,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cache = _TTLCache(lambda url: _parse_jwks(fetch(url)), clock)

    def signing_key(self, jwks_uri: str, kid: str, max_age: float) -> jwt.PyJWK:
        keys, fresh = self._cache.get(jwks_uri, max_age)
        if kid not in keys and not fresh:
            log.info("unknown kid %s: refreshing %s", kid, jwks_uri)
            keys, _ = self._cache.get(jwks_uri, max_age, refresh=True)
        if kid not in keys:
            raise SSOError("invalid_signature", f"no key {kid!r} in the provider's JWKS")
        return keys[kid]

    def clear(self) -> None:
        self._cache.clear()


JWKS_CACHE = JWKSCache()
_DISCOVERY_CACHE = _TTLCache(_get_json, time.monotonic)


def discover(settings: SSOSettings) -> Mapping[str, Any]:
    """The provider's OpenID configuration, cached for jwks_cache_seconds."""
    document, _ = _DISCOVERY_CACHE.get(settings.discovery_url, settings.jwks_cache_seconds)
    for name in ("issuer", "jwks_uri", "authorization_endpoint", "token_endpoint"):
        if not isinstance(document.get(name), str):
            raise SSOError("provider_unreachable", f"discovery document lacks {name}")
    if urlsplit(document["jwks_uri"]).scheme != "https":
        raise SSOError("provider_unreachable", "jwks_uri is not https")
    return document


def clear_caches() -> None:
    """Forget discovery documents and keys (tests; a key compromise)."""
    _DISCOVERY_CACHE.clear()
    JWKS_CACHE.clear()


def _expected_issuer(issuer: str, tid: Any) -> str:
    if TENANT_PLACEHOLDER not in issuer:
        return issuer
    if not isinstance(tid, str) or not _GUID.match(tid):
        raise SSOError("wrong_issuer", "multi-tenant ID token without a tenant GUID in tid")
    return issuer.replace(TENANT_PLACEHOLDER, tid)


def _allowed_tenants(settings: SSOSettings, issuer: str) -> frozenset[str] | None:
    """Tenant GUIDs that may sign in, or None for any tenant the issuer check lets through."""
    if settings.allowed_tenants:
        return frozenset(settings.allowed_tenants)
    if TENANT_PLACEHOLDER in issuer:
        return None  # organizations/common without allowed_tenants: any Entra tenant
    if _GUID.match(settings.tenant):
        return frozenset({settings.tenant})
    return None  # a domain authority: the discovered issuer pins its tenant


_JWT_ERRORS: tuple[tuple[type[jwt.InvalidTokenError], str], ...] = (
    (jwt.InvalidSignatureError, "invalid_signature"),
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),  # nbf or iat in the future
    (jwt.InvalidAudienceError, "wrong_audience"),
    (jwt.InvalidIssuerError, "wrong_issuer"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidTokenError, "invalid_token"),
)


def validate_id_token(
    settings: SSOSettings,
    id_token: str,
    *,
    discovery: Mapping[str, Any],
    nonce: str | None = None,
    jwks: JWKSCache | None = None,
) -> dict[str, Any]:
    """Check signature, iss, aud, exp/nbf/iat, nonce (if given) and tenant; return the claims.

    jwks defaults to the module's JWKS_CACHE.
    """
    if jwks is None:
        jwks = JWKS_CACHE
    try:
        header = jwt.get_unverified_header(id_token)
        unverified = jwt.decode(id_token, options={"verify_signature": False})
    except jwt.InvalidTokenError as exc:
        raise SSOError("invalid_token", f"not a JWT: {exc}") from exc
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ID_TOKEN_ALGORITHMS:
        raise SSOError("invalid_token", f"algorithm {alg!r} is not accepted")
    if not isinstance(kid, str) or not kid:
        raise SSOError("invalid_token", "the token header has no kid")
    issuer = _expected_issuer(discovery["issuer"], unverified.get("tid"))
    key = jwks.signing_key(discovery["jwks_uri"], kid, settings.jwks_cache_seconds)
    try:
        claims = jwt.decode(
            id_token,
            key=key,
            algorithms=list(ID_TOKEN_ALGORITHMS),
            audience=settings.client_id,
            issuer=issuer,
            leeway=settings.clock_skew_seconds,
            options={"require": list(REQUIRED_CLAIMS)},
        )
    except jwt.InvalidTokenError as exc:
        code = next(code for kind, code in _JWT_ERRORS if isinstance(exc, kind))
        raise SSOError(code, f"ID token rejected: {exc}") from exc
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != settings.client_id:
        raise SSOError("wrong_audience", "several audiences and azp is not our client_id")
    if nonce is not None and claims.get("nonce") != nonce:
        raise SSOError("nonce_mismatch", "the ID token's nonce is not this login's")
    allowed = _allowed_tenants(settings, discovery["issuer"])
    if allowed is not None and str(claims["tid"]).lower() not in allowed:
        raise SSOError("tenant_not_allowed", f"tenant {claims['tid']} may not sign in")
    return claims


def _nonce_hash(nonce: str) -> str:
    # What MSAL sends as the nonce parameter (and so what comes back in the ID token).
    return hashlib.sha256(nonce.encode("ascii")).hexdigest()


def _msal_app(settings: SSOSettings) -> msal.ConfidentialClientApplication:
    try:
        return msal.ConfidentialClientApplication(
            settings.client_id,
            client_credential=settings.client_credential,
            authority=settings.authority,
            instance_discovery=False,  # else MSAL asks login.microsoftonline.com about any host
            http_client=HTTP,
        )
    except requests.RequestException as exc:
        raise SSOError("provider_unreachable", f"MSAL could not reach the provider: {exc}") from exc


def begin_login(
    settings: SSOSettings,
    store: MutableMapping[str, Any],
    *,
    prompt: str | None = None,
    login_hint: str | None = None,
) -> str:
    """Start a login: keep MSAL's flow (state, nonce, PKCE verifier) in store; return its URL."""
    discover(settings)  # an unreachable provider is an SSOError; MSAL would raise ValueError
    flow = _msal_app(settings).initiate_auth_code_flow(
        list(settings.scopes),
        redirect_uri=settings.redirect_uri,
        prompt=prompt,
        login_hint=login_hint,
    )
    auth_uri = flow.pop("auth_uri")
    pending = [f for f in store.get(FLOWS_KEY) or () if isinstance(f, dict)]
    # Assign a new list (not append) so that a Flask session notices the change.
    store[FLOWS_KEY] = [*pending, flow][-MAX_PENDING_FLOWS:]
    return auth_uri


def complete_login(
    settings: SSOSettings,
    store: MutableMapping[str, Any],
    query_args: Mapping[str, str],
) -> Identity:
    """Finish a login from the redirect's query: redeem the code, validate the ID token.

    The matching flow is removed from store first, so a flow is good for one try.
    """
    pending: Sequence[dict[str, Any]] = [
        f for f in store.get(FLOWS_KEY) or () if isinstance(f, dict)
    ]
    if not pending:
        raise SSOError("no_flow", "no sign-in in progress in this session")
    state = query_args.get("state")
    flow = next((f for f in pending if state and f.get("state") == state), None)
    if flow is None:
        # Leave the pending flows alone: a forged redirect must not cancel a real login.
        raise SSOError("state_mismatch", "the redirect's state matches no sign-in in progress")
    store[FLOWS_KEY] = [f for f in pending if f is not flow]

    if "error" in query_args:
        raise SSOError(
            "provider_error",
            f"{query_args['error']}: {query_args.get('error_description', '')}".rstrip(": "),
        )
    discovery = discover(settings)
    returned_issuer = query_args.get("iss")  # RFC 9207, against mix-up attacks; Entra omits it
    if (
        returned_issuer is not None
        and TENANT_PLACEHOLDER not in discovery["issuer"]
        and returned_issuer != discovery["issuer"]
    ):
        raise SSOError("wrong_issuer", f"the redirect came from issuer {returned_issuer!r}")

    try:
        result = _msal_app(settings).acquire_token_by_auth_code_flow(flow, dict(query_args))
    except requests.RequestException as exc:
        raise SSOError("provider_unreachable", f"token request failed: {exc}") from exc
    except ValueError as exc:  # MSAL: state or scope mismatch, malformed flow
        raise SSOError("invalid_response", str(exc)) from exc
    except RuntimeError as exc:
        if "nonce" not in str(exc):
            raise
        raise SSOError("nonce_mismatch", str(exc)) from exc
    if "error" in result:
        raise SSOError(
            "provider_error", f"{result['error']}: {result.get('error_description', '')}"
        )
    id_token = result.get("id_token")
    if not isinstance(id_token, str):
        raise SSOError("invalid_response", "the token response has no id_token")
    claims = validate_id_token(
        settings, id_token, discovery=discovery, nonce=_nonce_hash(flow["nonce"])
    )
    identity = Identity.from_claims(claims)
    log.info("sign-in of oid=%s tid=%s", identity.oid, identity.tenant_id)
    return identity


def end_session_url(
    settings: SSOSettings, post_logout_redirect_uri: str | None = None
) -> str | None:
    """The provider's sign-out URL (None if it has no end_session_endpoint).

    post_logout_redirect_uri defaults to settings.post_logout_redirect_uri; it must be registered.
    """
    endpoint = discover(settings).get("end_session_endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        return None
    params = {"client_id": settings.client_id}
    redirect = post_logout_redirect_uri or settings.post_logout_redirect_uri
    if redirect:
        params["post_logout_redirect_uri"] = redirect
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(params)}"
