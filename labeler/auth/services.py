"""Accounts, roles, admission at sign-in, and personal API tokens."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, inspect, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from ..audit.services import record_event
from ..db import loaded, utcnow
from ..errors import Conflict, Forbidden, LabelerError, NotFound, ValidationError
from ..validation import clean_text
from .models import ApiToken, Role, User, UserRole
from .token_grants import Grant, Grants, SessionGrant, TokenGrant

TOKEN_PREFIX = "lbl_"
LAST_USED_RESOLUTION = timedelta(minutes=1)
DEFAULT_TOKEN_DAYS = 90
TOKEN_DAYS_CHOICES = (30, 90, 365, None)  # the tokens page offers these; None: never expires
MAX_TOKEN_DAYS = 3650
APP_ROLE_CLAIMS = {
    "Labeler.Rater": Role.rater,
    "Labeler.Lead": Role.lead,
    "Labeler.Admin": Role.admin,
}


class NotAdmitted(LabelerError):
    status, code = 403, "not_admitted"


def normalize_email(email: str) -> str:
    """An e-mail address, trimmed and lower-cased; NUL/control characters and spaces are refused."""
    email = (clean_text(email, "the e-mail address", max_len=320, collapse=False) or "").lower()
    if "@" not in email or any(c.isspace() for c in email):
        raise ValidationError(f"not a valid e-mail address: {email!r}")
    return email


def parse_roles(values: Iterable[str]) -> set[Role]:
    roles = set()
    for value in values:
        try:
            roles.add(Role(value.strip().lower()))
        except ValueError:
            raise ValidationError(f"unknown role {value!r}: choose rater, lead or admin") from None
    return roles


def find_user_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == normalize_email(email)))


def add_user(
    session: Session, actor: User | None, email: str, name: str, roles: Iterable[Role]
) -> User:
    """Invite an account by e-mail/UPN; it is bound to the SSO object id at first sign-in."""
    email = normalize_email(email)
    if find_user_by_email(session, email):
        raise Conflict(f"a user with e-mail {email} already exists")
    name = clean_text(name, "the name", max_len=200) or email.split("@")[0]
    user = User(email=email, name=name, active=True)
    user.role_rows = [UserRole(role=r) for r in sorted(set(roles), key=lambda r: r.value)]
    session.add(user)
    session.flush()
    record_event(
        session,
        actor,
        "user.add",
        "user",
        user.id,
        email=email,
        roles=sorted(r.value for r in roles),
    )
    return user


def set_roles(session: Session, actor: User | None, user: User, roles: Iterable[Role]) -> None:
    """Replace a user's roles (audited); admins cannot take their own admin role away."""
    wanted = set(roles)
    if (
        actor is not None
        and actor.id == user.id
        and Role.admin in user.roles
        and Role.admin not in wanted
    ):
        raise Forbidden("You cannot remove your own admin role; ask another admin.")
    changed = wanted != user.roles
    user.role_rows = [r for r in user.role_rows if r.role in wanted] + [
        UserRole(role=r) for r in sorted(wanted - user.roles, key=lambda r: r.value)
    ]
    if changed:
        end_sessions(session, user)  # a session never outlives the roles it was opened with
    session.flush()
    record_event(
        session, actor, "user.roles", "user", user.id, roles=sorted(r.value for r in wanted)
    )


def set_active(session: Session, actor: User | None, user: User, active: bool) -> None:
    """Activate or deactivate an account; a deactivated user is refused at once, even mid-session."""
    if actor is not None and actor.id == user.id and not active:
        raise Forbidden("You cannot deactivate your own account; ask another admin.")
    user.active = active
    # deactivation ends every session; reactivation must not revive cookies issued before it
    end_sessions(session, user)
    record_event(session, actor, "user.activate" if active else "user.deactivate", "user", user.id)


def end_sessions(session: Session, user: User) -> None:
    """Refuse every session cookie issued to the user so far (sign-out, (de)activation, role change).

    Sessions carry the user's generation from sign-in; the request hook compares it with the row it
    loads anyway. The increment is done in SQL so two concurrent bumps both count.
    """
    user.session_generation = User.session_generation + 1
    session.flush()


@dataclass(frozen=True)
class SignInIdentity:
    """What a validated ID token tells us about the person signing in."""

    oid: str
    tenant_id: str
    email: str | None
    name: str | None
    roles: tuple[str, ...] = ()


def admit(session: Session, identity: SignInIdentity, *, use_role_claims: bool) -> User:
    """Find or bind the account for a validated identity; refuse anyone not admitted."""
    user = session.scalar(
        select(User).where(User.oid == identity.oid, User.tenant_id == identity.tenant_id)
    )
    claimed = (
        {APP_ROLE_CLAIMS[r] for r in identity.roles if r in APP_ROLE_CLAIMS}
        if use_role_claims
        else set()
    )
    if user is None and identity.email:
        invited = session.scalar(select(User).where(User.email == identity.email.strip().lower()))
        if invited is not None:
            if invited.oid and (invited.oid, invited.tenant_id) != (
                identity.oid,
                identity.tenant_id,
            ):
                raise NotAdmitted("This invitation is already bound to another Microsoft account.")
            invited.oid, invited.tenant_id = identity.oid, identity.tenant_id
            user = invited
            record_event(session, user, "user.bind", "user", user.id, tenant=identity.tenant_id)
    if user is None:
        if not claimed:
            raise NotAdmitted(
                "Your account has not been admitted to this labeler. Ask an administrator for an invitation."
            )
        email = (identity.email or f"{identity.oid}@{identity.tenant_id}").strip().lower()
        user = User(
            email=email, name=identity.name or email, oid=identity.oid, tenant_id=identity.tenant_id
        )
        session.add(user)
        session.flush()
        record_event(
            session,
            None,
            "user.admit_by_role_claim",
            "user",
            user.id,
            roles=sorted(r.value for r in claimed),
        )
    if not user.active:
        raise NotAdmitted("This account has been deactivated.")
    if use_role_claims and claimed != user.roles and claimed:
        set_roles(session, None, user, claimed)
    if not user.roles:
        raise NotAdmitted("Your account has no role in this labeler yet. Ask an administrator.")
    user.last_login_at = utcnow()
    session.flush()
    return user


def token_hash(raw: str) -> str:
    """What a token is stored (and its check remembered) under: only the hash is kept."""
    return hashlib.sha256(raw.encode()).hexdigest()


class TokenRefused(LabelerError):
    """A bearer token that does not (or no longer) authenticate; the message says why."""

    status, code = 401, "invalid_token"


def token_lifetime(days: int | None) -> timedelta | None:
    """Check a requested token lifetime in days (None: the token never expires)."""
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_TOKEN_DAYS:
        raise ValidationError(
            f"A token's lifetime must be between 1 and {MAX_TOKEN_DAYS} days, or none."
        )
    return timedelta(days=days)


def create_token(
    session: Session,
    actor: User,
    user: User,
    name: str,
    *,
    expires_in_days: int | None = DEFAULT_TOKEN_DAYS,
) -> tuple[ApiToken, str]:
    """Create a personal API token; the raw value is returned once and stored only hashed."""
    lifetime = token_lifetime(expires_in_days)
    name = clean_text(name, "the token name", max_len=100) or "token"
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    token = ApiToken(
        user_id=user.id,
        name=name[:100],
        prefix=raw[:12],
        token_hash=token_hash(raw),
        created_at=now,
        expires_at=now + lifetime if lifetime else None,
    )
    session.add(token)
    session.flush()
    record_event(
        session,
        actor,
        "token.create",
        "api_token",
        token.id,
        user_id=user.id,
        expires_in_days=expires_in_days,
    )
    return token, raw


def revoke_token(session: Session, actor: User, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None or (token.user_id != actor.id and not actor.has_role(Role.admin)):
        raise NotFound("no such token")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        record_event(session, actor, "token.revoke", "api_token", token.id)
    session.flush()
    return token


# Every scripted request runs this: the token, its user and the user's roles in one indexed query,
# a Core statement built once (no ORM query: its compile and load steps cost more than the lookup).
_TOKENS, _USERS, _ROLES = ApiToken.__table__, User.__table__, UserRole.__table__
_USER_COLUMNS = [(a.key, a.columns[0]) for a in inspect(User).column_attrs]
_USER_LABELS = [(key, "user_" + key) for key, _column in _USER_COLUMNS]
# what _attach_user builds a user and its roles from: one row per role (none: NULLs)
_USER_ROLE_COLUMNS = (
    _ROLES.c.id.label("role_id"),
    _ROLES.c.role,
    *(column.label("user_" + key) for key, column in _USER_COLUMNS),
)
_TOKEN_USER = (
    select(
        _TOKENS.c.id.label("token_id"),
        _TOKENS.c.revoked_at,
        _TOKENS.c.expires_at,
        _TOKENS.c.last_used_at,
        *_USER_ROLE_COLUMNS,
    )
    .join(_USERS, _USERS.c.id == _TOKENS.c.user_id)
    .outerjoin(_ROLES, _ROLES.c.user_id == _USERS.c.id)
    .where(_TOKENS.c.token_hash == bindparam("token_hash"))
)
# Every signed-in page and browser request runs this (auth.login's user loader): the user and roles in
# one statement, where session.get(User) sends two (the roles are loaded "selectin")
_USER_AND_ROLES = (
    select(*_USER_ROLE_COLUMNS)
    .select_from(_USERS)
    .outerjoin(_ROLES, _ROLES.c.user_id == _USERS.c.id)
    .where(_USERS.c.id == bindparam("user_id"))
)
_STAMP_TOKEN = (
    update(_TOKENS)
    .where(_TOKENS.c.id == bindparam("token_id"))
    .values(last_used_at=bindparam("now", type_=_TOKENS.c.last_used_at.type))
)


def _as_utc(moment: datetime | None) -> datetime | None:
    """SQLite keeps no time zone; we store UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _attach_user(session: Session, rows: list) -> User:
    """The token's user as a persistent User of the session, built from the rows just read (no second
    query): its columns and its roles, as a query would have loaded them."""
    first = rows[0]
    user_id = first.user_id
    user = session.identity_map.get(identity_key(User, (user_id,)))
    if user is not None:
        return user
    mapping = first._mapping
    user = loaded(User, {key: mapping[label] for key, label in _USER_LABELS})
    session.add(user)
    roles = []
    for row in rows:
        if row.role_id is None:
            continue
        role = loaded(UserRole, {"id": row.role_id, "user_id": user_id, "role": row.role})
        session.add(role)
        set_committed_value(role, "user", user)
        roles.append(role)
    set_committed_value(user, "role_rows", roles)
    return user


def user_with_roles(session: Session, user_id: int, *, grants: Grants | None = None) -> User | None:
    """session.get(User, user_id) in one statement: the user and its roles, attached to the session
    as loaded (None: no such user). A user the session already holds is session.get's answer.
    ``grants``: where an active rater read here is remembered, for the hot path's views to take a
    session of this user and generation on trust (token_grants.SessionGrant)."""
    if identity_key(User, (user_id,)) in session.identity_map:
        return session.get(User, user_id)  # as it answers an object it holds (expired: reloaded)
    rows = session.connection().execute(_USER_AND_ROLES, {"user_id": user_id}).all()
    if not rows:
        return None
    first = rows[0]
    # remembered only for an active rater: the hot path's views take nothing else on trust
    if grants is not None and first.user_active and any(r.role == Role.rater for r in rows):
        grants.put(SessionGrant(user_id, first.user_session_generation, utcnow(), tuple(rows)))
    return _attach_user(session, rows)


def grant_user(session: Session, grant: Grant) -> User:
    """The user of a token or session taken on trust, built from its last full check (no query):
    the request's first read checks the caller again (labeler/auth/token_grants.py)."""
    return _attach_user(session, list(grant.rows))


def authenticate_token(
    session: Session, raw: str, *, stamp: bool = True, grants: Grants | None = None
) -> User:
    """The active user a bearer token belongs to (stamps last use); TokenRefused says why not.

    The last-use stamp (a minute's resolution; ``stamp=False`` skips it) is written with the
    session's connection and noted in ``session.info["wrote"]``: the caller commits it.
    ``grants``: where this check is remembered (a token that passed), for the hot path's views.
    """
    if not raw.startswith(TOKEN_PREFIX):
        raise TokenRefused("This is not a labeler API token.")
    hashed = token_hash(raw)
    rows = session.connection().execute(_TOKEN_USER, {"token_hash": hashed}).all()
    if not rows:
        raise TokenRefused("Unknown API token.")
    token = rows[0]
    if token.revoked_at is not None:
        raise TokenRefused("This API token has been revoked.", code="token_revoked")
    now = utcnow()
    expires_at = _as_utc(token.expires_at)
    if expires_at is not None and now >= expires_at:
        raise TokenRefused(
            f"This API token expired on {expires_at:%Y-%m-%d %H:%M} UTC; create a new one "
            "on the API tokens page.",
            code="token_expired",
        )
    if not token.user_active:
        raise TokenRefused("This account has been deactivated.", code="account_deactivated")
    last = _as_utc(token.last_used_at)
    if stamp and (last is None or now - last > LAST_USED_RESOLUTION):
        # a minute's resolution: no write on every scripted request. One statement, so it may also
        # run where a @reads_only view's session has no transaction (it commits on its own there)
        session.connection().execute(_STAMP_TOKEN, {"token_id": token.token_id, "now": now})
        session.info["wrote"] = True
        last = now
    # remembered only for a rater: the hot path's views take nothing else on trust (TOKEN_STILL_VALID)
    if grants is not None and last is not None and any(r.role == Role.rater for r in rows):
        grants.put(
            TokenGrant(
                token_hash=hashed,
                token_id=token.token_id,
                user_id=token.user_id,
                generation=token.user_session_generation,
                expires_at=expires_at,
                stamped_at=last,
                rows=tuple(rows),
            )
        )
    return _attach_user(session, rows)


def user_for_token(session: Session, raw: str) -> User | None:
    """The active user a bearer token belongs to, or None (see authenticate_token for the reason)."""
    try:
        return authenticate_token(session, raw)
    except TokenRefused:
        return None
