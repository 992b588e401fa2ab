"""Settings: read from LABELER_* environment variables (and an optional .env) when the app is built."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values

# An allow-list, compared exactly (no trimming, no case folding): any other LABELER_ENV value, a typo
# included, is production, with secure cookies, single sign-on and a strong secret key required.
DEVELOPMENT_ENVS = frozenset({"development", "test"})
MIN_SECRET_KEY_BYTES = 32


class ConfigError(RuntimeError):
    """The configuration is unusable; the app refuses to start."""


def _bool(value: str | bool | None) -> bool:
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in {"1", "true", "yes", "on"}


def is_production(environment: object) -> bool:
    """Everything but exactly 'development' or 'test' is production."""
    return environment not in DEVELOPMENT_ENVS


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Build the Flask config dict from the environment, a .env file and explicit overrides."""
    env: dict[str, str] = {}
    dotenv_path = (environ or os.environ).get("LABELER_DOTENV", ".env")
    if Path(dotenv_path).is_file():
        env.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    env.update(environ if environ is not None else os.environ)

    def get(name: str, default: Any = None) -> Any:
        return env.get(f"LABELER_{name}", default)

    instance = Path(get("INSTANCE_PATH", Path.cwd() / "instance")).resolve()
    # unset: development, except that the development sign-in needs it set explicitly (below)
    environment = get("ENV")
    cfg: dict[str, Any] = {
        "LABELER_ENV": "development" if environment is None else environment,
        "INSTANCE_PATH": str(instance),
        "SECRET_KEY": get("SECRET_KEY"),
        "DATABASE_URL": get("DATABASE_URL", f"sqlite:///{instance / 'labeler.db'}"),
        "STORAGE_PATH": get("STORAGE_PATH", str(instance / "files")),
        # where images, tiles and trained models are stored: unset is the folder STORAGE_PATH;
        # file:///abs/path or azure://<container> (labeler/images/storage.py, README "Storage")
        "STORAGE_URL": get("STORAGE_URL"),
        "AZURE_STORAGE_CONNECTION_STRING": get("AZURE_STORAGE_CONNECTION_STRING"),
        "AZURE_STORAGE_ACCOUNT_URL": get(
            "AZURE_STORAGE_ACCOUNT_URL"
        ),  # with DefaultAzureCredential
        "AUTH_MODE": get("AUTH", "sso").lower(),
        "SSO_AUTHORITY": get("SSO_AUTHORITY"),
        "SSO_CLIENT_ID": get("SSO_CLIENT_ID"),
        "SSO_CLIENT_SECRET": get("SSO_CLIENT_SECRET"),
        # a PEM file holding the private key and the certificate uploaded to the app registration
        "SSO_CLIENT_CERTIFICATE": get("SSO_CLIENT_CERTIFICATE"),
        "SSO_REDIRECT_URI": get("SSO_REDIRECT_URI"),
        "SSO_POST_LOGOUT_REDIRECT_URI": get("SSO_POST_LOGOUT_REDIRECT_URI"),
        "SSO_ALLOWED_TENANTS": tuple(
            t.strip() for t in str(get("SSO_ALLOWED_TENANTS", "")).split(",") if t.strip()
        ),
        "SSO_ROLE_CLAIMS": _bool(get("SSO_ROLE_CLAIMS", "false")),
        "SESSION_IDLE_MINUTES": int(get("SESSION_IDLE_MINUTES", 60)),
        "SESSION_ABSOLUTE_HOURS": int(get("SESSION_ABSOLUTE_HOURS", 12)),
        # request bodies: 1 MB for JSON and forms; routes marked @accepts_upload (image import) take
        # up to LABELER_MAX_UPLOAD_MB (see labeler/web.py); past either, 413 before anything is read
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        "MAX_FORM_MEMORY_SIZE": 1024 * 1024,  # one limit for a form's text (werkzeug's is 500 KB)
        "MAX_UPLOAD_BYTES": int(get("MAX_UPLOAD_MB", 512)) * 1024 * 1024,
        # how many proxies in front of the app set X-Forwarded-For/-Proto/-Host (nginx from
        # `labeler deploy nginx`: 1); 0 ignores those headers, which anyone could send
        "TRUSTED_PROXIES": get("TRUSTED_PROXIES", "0"),
        # behind the nginx of `labeler deploy nginx` with the local storage backend: after authorizing
        # a rater's image or tile the app answers with X-Accel-Redirect and nginx sends the file
        "X_ACCEL_REDIRECT": _bool(get("X_ACCEL_REDIRECT", "false")),
        # trained models (<ML_DIR>/models) and the feature cache (<ML_DIR>/cache)
        "ML_DIR": get("ML_DIR", str(instance / "ml")),
        # start a background worker process for each training run (off: queued runs wait for `labeler ml work RUN_ID`)
        "ML_SPAWN_WORKER": _bool(get("ML_SPAWN_WORKER", "true")),
        # jobs on Celery (labeler/jobs): a Redis URL sends training runs to `celery -A
        # labeler.jobs.worker worker` processes; unset, each run gets a local worker process
        "CELERY_BROKER_URL": get("CELERY_BROKER_URL"),
        # a running run's worker stamps its row every ML_HEARTBEAT_S; silent for longer than
        # ML_HEARTBEAT_TIMEOUT_S, the run reads failed (its worker or machine died)
        "ML_HEARTBEAT_S": float(get("ML_HEARTBEAT_S", 10)),
        "ML_HEARTBEAT_TIMEOUT_S": float(get("ML_HEARTBEAT_TIMEOUT_S", 60)),
        # uploads larger than this are imported by a worker (labeler/images/import_jobs.py): the
        # request stores them in the blob store and answers at once; smaller ones are imported in it
        "IMPORT_JOB_MB": float(get("IMPORT_JOB_MB", 64)),
        # jobs without a broker (import jobs, deep-zoom tiles): 'process' (a local worker process
        # each), 'inline' (in the asking process: tests, the CLI) or 'off' (left queued)
        "JOBS_LOCAL": get("JOBS_LOCAL", "process"),
        # build deep-zoom tiles after every import (a job); off: `labeler images tiles` builds them
        "TILES_AT_IMPORT": _bool(get("TILES_AT_IMPORT", "true")),
        # webhooks (labeler/webhooks): networks that may receive them although not public (CIDR
        # blocks, comma-separated; empty: public addresses only), per-attempt timeout, attempts
        # before a delivery fails, first retry delay (doubling), 'off' leaves sending to
        # `labeler webhooks deliver`
        "WEBHOOK_ALLOWED_NETWORKS": tuple(
            n.strip() for n in str(get("WEBHOOK_ALLOWED_NETWORKS", "")).split(",") if n.strip()
        ),
        "WEBHOOK_TIMEOUT_S": float(get("WEBHOOK_TIMEOUT_S", 10)),
        "WEBHOOK_MAX_ATTEMPTS": int(get("WEBHOOK_MAX_ATTEMPTS", 8)),
        "WEBHOOK_RETRY_BASE_S": float(get("WEBHOOK_RETRY_BASE_S", 30)),
        "WEBHOOK_DELIVERY": get("WEBHOOK_DELIVERY", "auto"),
        "WTF_CSRF_TIME_LIMIT": None,
        # the cookie itself expires with the absolute timeout (the server checks both timeouts too)
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=int(get("SESSION_ABSOLUTE_HOURS", 12))),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
    }
    if overrides:
        cfg.update(overrides)
    # Secure cookies everywhere but on a developer's http://localhost (also when overrides set the env)
    secure = is_production(cfg["LABELER_ENV"])
    for name in ("SESSION_COOKIE_SECURE", "REMEMBER_COOKIE_SECURE"):
        cfg.setdefault(name, secure)
    explicit = environment is not None or "LABELER_ENV" in (overrides or {})
    validate_settings(cfg, environment_explicit=explicit)
    return cfg


def validate_settings(cfg: dict[str, Any], *, environment_explicit: bool = True) -> None:
    """Refuse dangerous combinations (dev sign-in in production, missing or weak secrets)."""
    env = cfg["LABELER_ENV"]
    production = is_production(env)
    if cfg["AUTH_MODE"] not in {"sso", "dev"}:
        raise ConfigError(f"LABELER_AUTH must be 'sso' or 'dev', not {cfg['AUTH_MODE']!r}")
    if production:
        counts = f"LABELER_ENV={env!r} counts as production (only exactly 'development' or 'test' do not)"
        if cfg["AUTH_MODE"] == "dev":
            raise ConfigError(f"LABELER_AUTH=dev (development sign-in) is refused: {counts}")
        key = cfg.get("SECRET_KEY")
        if not key:
            raise ConfigError(f"LABELER_SECRET_KEY must be set: {counts}")
        size = len(key.encode() if isinstance(key, str) else key)
        if size < MIN_SECRET_KEY_BYTES:
            raise ConfigError(
                f"LABELER_SECRET_KEY is {size} bytes; production needs at least "
                f"{MIN_SECRET_KEY_BYTES} random bytes, e.g. the output of "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
    elif cfg["AUTH_MODE"] == "dev" and not environment_explicit:
        # a server configured by copying a developer's LABELER_AUTH=dev and nothing else must not
        # offer the password-less sign-in that lists every account
        raise ConfigError(
            "LABELER_AUTH=dev (development sign-in) needs LABELER_ENV=development (or test) set "
            "explicitly"
        )
    if cfg["AUTH_MODE"] == "sso" and production:
        missing = [
            k for k in ("SSO_AUTHORITY", "SSO_CLIENT_ID", "SSO_REDIRECT_URI") if not cfg.get(k)
        ]
        if missing:
            raise ConfigError("single sign-on needs " + ", ".join("LABELER_" + m for m in missing))
    sso_configured = cfg["AUTH_MODE"] == "sso" and (cfg.get("SSO_AUTHORITY") or production)
    if sso_configured and bool(cfg.get("SSO_CLIENT_SECRET")) == bool(
        cfg.get("SSO_CLIENT_CERTIFICATE")
    ):
        raise ConfigError(
            "single sign-on needs exactly one of LABELER_SSO_CLIENT_SECRET and LABELER_SSO_CLIENT_CERTIFICATE"
        )
    proxies = str(cfg.get("TRUSTED_PROXIES", 0)).strip()
    if not proxies.isdigit() or int(proxies) > 10:
        raise ConfigError(
            f"LABELER_TRUSTED_PROXIES must be a whole number from 0 to 10 (the proxies in front "
            f"of the app; 1 behind nginx), not {proxies!r}"
        )
    cfg["TRUSTED_PROXIES"] = int(proxies)
    if not cfg.get("SECRET_KEY"):
        # development only: a per-instance key kept in the instance folder so sessions survive restarts
        cfg["SECRET_KEY"] = _instance_secret(Path(cfg["INSTANCE_PATH"]))


# OpenSeadragon 6.1.1 (static/vendor) injects one <style> (no focus outline on touch screens); this
# hash allows exactly that text and nothing else. A new OpenSeadragon version needs its own hash.
OPENSEADRAGON_STYLE_HASH = "sha256-9xTiqzfwFaL2SGb1rmr8gysEwVVjIvqWAgmZgqFqpEE="


def content_security_policy(cfg: Mapping[str, Any]) -> str:
    """The CSP header. Forms post only to this app; sign-out's form is answered by a redirect to the
    identity provider's end-session page, which form-action also governs, so that origin is allowed
    when single sign-on is configured (and only then)."""
    form_action = ["'self'"]
    authority = cfg.get("SSO_AUTHORITY")
    if cfg.get("AUTH_MODE") == "sso" and authority:
        parts = urlsplit(authority)
        if parts.scheme and parts.netloc:
            form_action.append(f"{parts.scheme}://{parts.netloc}")
    return (
        "default-src 'self'; img-src 'self' data: blob:; "
        f"style-src 'self' '{OPENSEADRAGON_STYLE_HASH}'; script-src 'self'; "
        f"frame-ancestors 'none'; base-uri 'none'; form-action {' '.join(form_action)}"
    )


# The app server's measured settings (README, Production; bench/labeling.py), used by `labeler serve`
# and stated in the nginx configuration: gthread workers with 8 threads, each replaced after about
# GUNICORN_MAX_REQUESTS requests (a worker's boot, about 2.5 s of CPU, spread over 2000 added 1.1 ms
# per label), jittered so that they are replaced one at a time.
GUNICORN_THREADS = 8
GUNICORN_MAX_REQUESTS = 20000
GUNICORN_MAX_REQUESTS_JITTER = 2000


def security_headers(cfg: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The headers on every answer: the app's own (labeler/__init__.py) and the files nginx serves
    (labeler/deploy/nginx.py). Cross-origin isolation everywhere: a worker script without COEP hangs
    onnxruntime-web's threaded WASM silently, and everything the pages load is same-origin."""
    return (
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin"),
        ("Content-Security-Policy", content_security_policy(cfg)),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Cross-Origin-Embedder-Policy", "require-corp"),
    )


def add_security_headers(headers: Any, prepared: list[tuple[str, tuple[str, str]]]) -> None:
    """Add to an answer's headers (werkzeug Headers or a WSGI list) each of ``prepared`` (the
    security headers as (lowercase name, (name, value))) it does not set itself (a page may set its
    own CSP): one pass over the answer's headers, not one per header."""
    present = {name.lower() for name, _value in headers}
    headers.extend([header for lower, header in prepared if lower not in present])


def _instance_secret(instance: Path) -> str:
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()
