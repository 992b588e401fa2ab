"""`labeler users ...`: accounts, roles and API tokens."""

from __future__ import annotations

import click
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select

from ..db import CommandSession
from .models import User
from .services import add_user, create_token, find_user_by_email, parse_roles, set_active

users_cli = AppGroup("users", help="Accounts, roles and API tokens.")


def _user(session, email: str):
    user = find_user_by_email(session, email)
    if user is None:
        raise click.ClickException(f"no user with e-mail {email}")
    return user


@users_cli.command("add")
@click.argument("email")
@click.option("--name", default="", help="Display name.")
@click.option(
    "--role", "roles", multiple=True, required=True, help="rater, lead or admin (repeatable)."
)
@with_appcontext
def users_add(email: str, name: str, roles: tuple[str, ...]) -> None:
    """Invite an account (bound to its Microsoft account at first sign-in)."""
    with CommandSession() as s:
        parsed = parse_roles(r for value in roles for r in value.split(","))
        user = add_user(s, None, email, name, parsed)
        click.echo(f"user {user.id} {user.email} roles={','.join(sorted(r.value for r in parsed))}")


def _token_days(value: str) -> int | None:
    if value.strip().lower() in {"none", "never"}:
        return None
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: give a number of days, or 'none'") from None


@users_cli.command("token")
@click.argument("email")
@click.option("--name", default="cli", help="A name to recognise the token by.")
@click.option(
    "--days",
    default="90",
    show_default=True,
    help="Days until the token expires, or 'none' for a token that never expires.",
)
@with_appcontext
def users_token(email: str, name: str, days: str) -> None:
    """Print a new personal API token for EMAIL (shown once; stored hashed)."""
    with CommandSession() as s:
        user = _user(s, email)
        token, raw = create_token(s, user, user, name, expires_in_days=_token_days(days))
        click.echo(raw)
        expiry = f"{token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "never"
        click.echo(f"expires: {expiry}", err=True)  # stdout carries the token alone


@users_cli.command("list")
@with_appcontext
def users_list() -> None:
    """List accounts with their roles."""
    with CommandSession() as s:
        for u in s.scalars(select(User).order_by(User.email)):
            state = "" if u.active else " (deactivated)"
            click.echo(f"{u.id}\t{u.email}\t{','.join(sorted(r.value for r in u.roles))}{state}")


@users_cli.command("deactivate")
@click.argument("email")
@with_appcontext
def users_deactivate(email: str) -> None:
    """Deactivate an account (refused at once, even in an open session)."""
    with CommandSession() as s:
        user = _user(s, email)
        set_active(s, None, user, False)
        click.echo(f"deactivated {user.email}")
