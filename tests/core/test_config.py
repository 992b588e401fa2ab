"""Settings come from LABELER_* variables; dangerous combinations refuse to start."""

import pytest

from labeler import create_app
from labeler.config import MIN_SECRET_KEY_BYTES, ConfigError, load_settings

STRONG_KEY = "k" * MIN_SECRET_KEY_BYTES  # long enough for production; the tests never sign with it
SSO = {
    "SSO_AUTHORITY": "https://login.example.test/tenant",
    "SSO_CLIENT_ID": "c",
    "SSO_REDIRECT_URI": "https://app/auth/redirect",
    "SSO_CLIENT_SECRET": "x",
}


def test_reads_environment(tmp_path):
    cfg = load_settings(
        environ={
            "LABELER_DATABASE_URL": "sqlite:///x.db",
            "LABELER_INSTANCE_PATH": str(tmp_path),
            "LABELER_AUTH": "dev",
            "LABELER_ENV": "development",
            "LABELER_DOTENV": str(tmp_path / "none"),
        }
    )
    assert cfg["DATABASE_URL"] == "sqlite:///x.db"
    assert cfg["AUTH_MODE"] == "dev"
    assert cfg["SECRET_KEY"]  # generated and kept in the instance folder for development
    assert (tmp_path / "secret_key").exists()


def test_dotenv_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("LABELER_DATABASE_URL=sqlite:///from-dotenv.db\n")
    cfg = load_settings(
        environ={"LABELER_DOTENV": str(env_file), "LABELER_INSTANCE_PATH": str(tmp_path)}
    )
    assert cfg["DATABASE_URL"] == "sqlite:///from-dotenv.db"


def test_production_refuses_dev_sign_in(tmp_path):
    with pytest.raises(ConfigError, match="refused"):
        create_app(
            {
                "LABELER_ENV": "production",
                "AUTH_MODE": "dev",
                "SECRET_KEY": STRONG_KEY,
                "INSTANCE_PATH": str(tmp_path),
            }
        )


def test_production_needs_secret_and_sso(tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_settings(
            {
                "LABELER_ENV": "production",
                "AUTH_MODE": "sso",
                "SECRET_KEY": None,
                "INSTANCE_PATH": str(tmp_path),
            },
            environ={},
        )
    with pytest.raises(ConfigError, match="SSO_AUTHORITY"):
        load_settings(
            {"LABELER_ENV": "production", "SECRET_KEY": STRONG_KEY, "INSTANCE_PATH": str(tmp_path)},
            environ={},
        )


def test_production_cookies_are_secure(tmp_path):
    cfg = load_settings(
        {
            "SECRET_KEY": STRONG_KEY,
            "INSTANCE_PATH": str(tmp_path),
            "SSO_AUTHORITY": "https://x/t",
            "SSO_CLIENT_ID": "c",
            "SSO_REDIRECT_URI": "https://app/auth/redirect",
            "SSO_CLIENT_SECRET": "x",
        },
        environ={"LABELER_ENV": "production"},
    )
    assert cfg["SESSION_COOKIE_SECURE"] and cfg["SESSION_COOKIE_HTTPONLY"]
    assert cfg["SESSION_COOKIE_SAMESITE"] == "Lax"


@pytest.mark.parametrize(
    "credentials", [{}, {"SSO_CLIENT_SECRET": "x", "SSO_CLIENT_CERTIFICATE": "/k.pem"}]
)
def test_sso_needs_one_client_credential(tmp_path, credentials):
    with pytest.raises(ConfigError, match="exactly one of"):
        load_settings(
            {
                "SECRET_KEY": STRONG_KEY,
                "INSTANCE_PATH": str(tmp_path),
                "SSO_AUTHORITY": "https://x/t",
                "SSO_CLIENT_ID": "c",
                "SSO_REDIRECT_URI": "https://app/auth/redirect",
                **credentials,
            },
            environ={"LABELER_ENV": "production"},
        )


def test_unknown_auth_mode(tmp_path):
    with pytest.raises(ConfigError):
        load_settings({"AUTH_MODE": "none", "INSTANCE_PATH": str(tmp_path)}, environ={})


@pytest.mark.parametrize(
    "environment", ["production", "prod-eu", "live", "Production ", "Development", "TEST", ""]
)
def test_anything_but_development_or_test_is_production(tmp_path, environment):
    """An allow-list compared exactly: a typo or a new name is production, never the dev sign-in."""
    with pytest.raises(ConfigError, match="development sign-in") as refused:
        load_settings(
            {"AUTH_MODE": "dev", "SECRET_KEY": STRONG_KEY, "INSTANCE_PATH": str(tmp_path)},
            environ={"LABELER_ENV": environment},
        )
    assert repr(environment) in str(refused.value)  # says which value counted as production
    cfg = load_settings(
        {"SECRET_KEY": STRONG_KEY, "INSTANCE_PATH": str(tmp_path), **SSO},
        environ={"LABELER_ENV": environment},
    )
    assert cfg["SESSION_COOKIE_SECURE"]


@pytest.mark.parametrize("environment", ["development", "test"])
def test_development_sign_in_in_development_and_test(tmp_path, environment):
    cfg = load_settings(
        {"AUTH_MODE": "dev", "INSTANCE_PATH": str(tmp_path)}, environ={"LABELER_ENV": environment}
    )
    assert cfg["AUTH_MODE"] == "dev" and not cfg["SESSION_COOKIE_SECURE"]


def test_unset_environment_is_development_but_not_for_the_development_sign_in(tmp_path):
    cfg = load_settings({"INSTANCE_PATH": str(tmp_path)}, environ={})
    assert cfg["LABELER_ENV"] == "development" and not cfg["SESSION_COOKIE_SECURE"]
    with pytest.raises(ConfigError, match="set explicitly"):
        load_settings({"INSTANCE_PATH": str(tmp_path)}, environ={"LABELER_AUTH": "dev"})
    explicit = load_settings(
        {"INSTANCE_PATH": str(tmp_path)},
        environ={"LABELER_AUTH": "dev", "LABELER_ENV": "development"},
    )
    assert explicit["AUTH_MODE"] == "dev"


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("k" * (MIN_SECRET_KEY_BYTES - 1), False),
        ("é" * (MIN_SECRET_KEY_BYTES // 2 - 1), False),  # counted in bytes, not characters
        ("é" * (MIN_SECRET_KEY_BYTES // 2), True),
        (b"k" * MIN_SECRET_KEY_BYTES, True),
        ("k" * MIN_SECRET_KEY_BYTES, True),
    ],
)
def test_production_refuses_a_short_secret_key(tmp_path, key, ok):
    settings = {"SECRET_KEY": key, "INSTANCE_PATH": str(tmp_path), **SSO}
    if ok:
        assert load_settings(settings, environ={"LABELER_ENV": "production"})["SECRET_KEY"] == key
        return
    with pytest.raises(ConfigError, match=f"at least {MIN_SECRET_KEY_BYTES} random bytes"):
        load_settings(settings, environ={"LABELER_ENV": "production"})


def test_development_accepts_any_secret_key(tmp_path):
    cfg = load_settings(
        {"AUTH_MODE": "dev", "SECRET_KEY": "s", "INSTANCE_PATH": str(tmp_path)},
        environ={"LABELER_ENV": "development"},
    )
    assert cfg["SECRET_KEY"] == "s"
