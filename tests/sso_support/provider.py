"""Run tests/oidc_provider/server.mjs (a real OpenID provider shaped like Entra ID) as a child."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urljoin, urlsplit, urlunsplit

import requests

from .certs import TLSFiles

PROVIDER_DIR = Path(__file__).resolve().parent.parent / "oidc_provider"
INSTALL_HINT = "run `npm ci --prefix tests/oidc_provider`"
DEFAULT_TENANT = "7d0f3c2a-5b1e-4c8f-9a6d-2e4b8c1f0a3d"
OTHER_TENANT = "0b9a8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d"  # a guest user's home tenant
TAMPER_MODES = frozenset(
    {
        "wrong_audience",
        "wrong_issuer",
        "expired",
        "not_yet_valid",
        "forged_signature",
        "unknown_kid",
        "rotated_key",
    }
)
# the tamper modes that must be refused, with the SSOError code each one gets (rotated_key is accepted)
REFUSED_TOKENS = (
    ("forged_signature", "invalid_signature"),
    ("unknown_kid", "invalid_signature"),
    ("wrong_audience", "wrong_audience"),
    ("wrong_issuer", "wrong_issuer"),
    ("expired", "expired"),
    ("not_yet_valid", "not_yet_valid"),
)
_READY = re.compile(r"^OP ready (\d+)$", re.MULTILINE)


class ProviderNotInstalled(RuntimeError):
    """node or the provider's node_modules are missing."""


class SignInFailed(AssertionError):
    """The provider did not send the browser back to a redirect URI."""


def check_installed() -> str:
    """Return the node executable, or raise ProviderNotInstalled saying how to install."""
    node = shutil.which("node")
    if node is None:
        raise ProviderNotInstalled("node is not on PATH; the SSO tests need Node 20+")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        raise ProviderNotInstalled(f"{PROVIDER_DIR / 'node_modules'} is missing: {INSTALL_HINT}")
    return node


class OIDCProvider:
    """The local provider on an ephemeral 127.0.0.1 port; a context manager that ends its child.

    users maps a user name to {"password", "name", "email", "roles", optional "oid", "tid",
    "preferred_username" and "tamper" (one of TAMPER_MODES)}. A missing oid gets a stable GUID.
    """

    def __init__(
        self,
        users: Mapping[str, Mapping[str, Any]],
        redirect_uris: Iterable[str],
        *,
        tls: TLSFiles,
        tenant: str = DEFAULT_TENANT,
        client_id: str = "labeler-test-client",
        client_secret: str = "labeler-test-secret",
        post_logout_redirect_uris: Iterable[str] = (),
        auto_login: str | None = None,
        start_timeout: float = 20.0,
    ) -> None:
        self.users = {name: self._complete_user(tenant, name, user) for name, user in users.items()}
        self.redirect_uris = tuple(redirect_uris)
        self.post_logout_redirect_uris = tuple(post_logout_redirect_uris)
        self.tls = tls
        self.tenant = tenant
        self.client_id = client_id
        self.client_secret = client_secret
        self.auto_login = auto_login
        self.start_timeout = start_timeout
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._log_path: Path | None = None

    @staticmethod
    def _complete_user(tenant: str, name: str, user: Mapping[str, Any]) -> dict[str, Any]:
        tamper = user.get("tamper")
        if tamper is not None and tamper not in TAMPER_MODES:
            raise ValueError(f"user {name}: unknown tamper mode {tamper!r}")
        oid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"labeler-test:{tenant}:{name}"))
        return {"oid": oid, **user}

    @property
    def origin(self) -> str:
        if self.port is None:
            raise RuntimeError("provider not started")
        return f"https://127.0.0.1:{self.port}"

    @property
    def authority(self) -> str:
        """The app's authority setting (as https://login.microsoftonline.com/<tenant> in prod)."""
        return f"{self.origin}/{self.tenant}"

    @property
    def issuer(self) -> str:
        return f"{self.authority}/v2.0"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def log(self) -> str:
        """What the provider printed so far (stdout and stderr)."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        return self._log_path.read_text(errors="replace")

    def sign_in(
        self,
        auth_url: str,
        username: str | None = None,
        password: str | None = None,
        *,
        http: requests.Session | None = None,
    ) -> dict[str, str]:
        """Play the browser: open auth_url, fill the login form if shown, return the query args
        of the redirect back to a registered redirect URI (without requesting it).

        password defaults to the user's. A new requests.Session (no provider SSO session) unless
        http is given. Raises SignInFailed with the page's #error text on a rejected password.
        """
        http = http or requests.Session()
        response = http.get(auth_url, allow_redirects=False, timeout=10)
        submitted = False
        for _ in range(10):
            if response.is_redirect:
                location = urljoin(response.url, response.headers["Location"])
                parts = urlsplit(location)
                if urlunsplit((*parts[:3], "", "")) in self.redirect_uris:
                    return dict(parse_qsl(parts.query))
                response = http.get(location, allow_redirects=False, timeout=10)
            elif response.status_code == 200 and 'id="signin"' in response.text:
                if submitted:
                    error = re.search(r'id="error"[^>]*>([^<]*)<', response.text)
                    raise SignInFailed(error.group(1) if error else "login form shown again")
                if username is None:
                    raise SignInFailed(
                        "the provider shows its login form but no username was given"
                    )
                action = re.search(r'<form[^>]*action="([^"]+)"', response.text)
                if action is None:
                    raise SignInFailed("login form without an action")
                if password is None:
                    password = self.users[username]["password"]
                response = http.post(
                    urljoin(response.url, action.group(1)),
                    data={"username": username, "password": password},
                    allow_redirects=False,
                    timeout=10,
                )
                submitted = True
            else:
                raise SignInFailed(
                    f"unexpected HTTP {response.status_code} from {response.url}: "
                    f"{response.text[:500]}"
                )
        raise SignInFailed(f"too many redirects from {auth_url}")

    def start(self) -> Self:
        node = check_installed()
        if self._proc is not None:
            raise RuntimeError("provider already started")
        self._tmp = tempfile.TemporaryDirectory(prefix="oidc-provider-")
        tmp = Path(self._tmp.name)
        users_file = tmp / "users.json"
        users_file.write_text(json.dumps(self.users))
        self._log_path = tmp / "provider.log"
        env = {
            **os.environ,
            "OP_PORT": "0",
            "OP_TENANT": self.tenant,
            "OP_CLIENT_ID": self.client_id,
            "OP_CLIENT_SECRET": self.client_secret,
            "OP_REDIRECT_URIS": ",".join(self.redirect_uris),
            "OP_POST_LOGOUT_REDIRECT_URIS": ",".join(self.post_logout_redirect_uris),
            "OP_USERS_FILE": str(users_file),
            "OP_TLS_CERT": str(self.tls.server_cert),
            "OP_TLS_KEY": str(self.tls.server_key),
            "OP_AUTO_LOGIN": self.auto_login or "",
        }
        # Output goes to a file, not a pipe, so that a chatty child can never block on a full pipe.
        with self._log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                [node, "server.mjs"],
                cwd=PROVIDER_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self.start_timeout
        while True:
            if match := _READY.search(self.log()):
                self.port = int(match.group(1))
                return self
            if self._proc.poll() is not None:
                output = self.log()
                self.stop()
                raise RuntimeError(f"OIDC provider exited early:\n{output}")
            if time.monotonic() > deadline:
                output = self.log()
                self.stop()
                raise RuntimeError(f"OIDC provider not ready in {self.start_timeout} s:\n{output}")
            time.sleep(0.02)

    def stop(self) -> None:
        """End our own child (by its handle, never by name) and remove the temporary files."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        self.port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
