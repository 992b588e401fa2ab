"""Settings come from LABELER_* variables; dangerous combinations refuse to start."""

import pytest

from labeler import create_app
from labeler.config import ConfigError, load_settings


def test_reads_environment(tmp_path):
    cfg = load_settings(
        environ={
            "LABELER_DATABASE_URL": "sqlite:///x.db",
            "LABELER_INSTANCE_PATH": str(tmp_path),
            "LABELER_AUTH": "dev",
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
                "SECRET_KEY": "s",
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
            {"LABELER_ENV": "production", "SECRET_KEY": "s", "INSTANCE_PATH": str(tmp_path)},
            environ={},
        )


def test_production_cookies_are_secure(tmp_path):
    cfg = load_settings(
        {
            "SECRET_KEY": "s",
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
                "SECRET_KEY": "s",
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
