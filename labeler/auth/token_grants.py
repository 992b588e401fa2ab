"""The caller on the labeling hot path (a bearer token, or a browser's session cookie): checked inside
the request's first read, not by a query of its own.

Every scripted request used to begin with the token's query (the token, its user and the user's roles),
a quarter of a label cycle's CPU. A process now remembers what its last full check of a token found (a
TokenGrant: the token, its user and roles, the user's session generation) and, on the few views marked
``@caller_checked_in_query`` (the queue's next item, the display image, the label's save), takes the token
on trust only until the view's first read has checked it again: that statement carries
``TOKEN_STILL_VALID``, an EXISTS over the token and its user (not revoked, the user active and at the same
session generation, which sign-out, deactivation, reactivation and every role change bump). So no cache
ever answers for a revoked token, a deactivated user or changed roles, not for a single request: the
check runs on every request, in the database, in the statement the view sends anyway. (On PostgreSQL
the label's save takes the project's shared queue lock before that read; a refused token's
transaction, lock included, is discarded, and nothing was written or answered under it.)

A statement that finds no row cannot say whether the token failed its check or the row does not exist
(another rater's item, an empty queue): the check then runs alone, and if the token no longer passes,
StaleGrant is raised and the view is answered again from the start, in a new session, after the full
check (labeler/auth/login.py). So is a view that answers, or is refused, before any checked statement
ran (a malformed body): nothing is answered under a token that was not checked in this request. The expiry and the once-a-minute last-use stamp are decided by the full
check: a grant is trusted only until the token expires and while its stamp is less than a minute old.

A signed-in browser session is taken on trust the same way (a SessionGrant: what the session user
loader last read of the user, its roles and generation, for at most a minute), checked by
``SESSION_STILL_VALID`` (the user active, at the session cookie's generation, a rater) in the same
statements: every label the labeling page saves, and its next item, cost one statement fewer. The
cookie's own checks (signature, timeouts, CSRF) run on every request before the view, as before.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, exists, select, true
from sqlalchemy.orm import Session

from .models import ApiToken, Role, User, UserRole

PENDING = "labeler_token_check"  # session.info: the PendingCheck of a caller taken on trust
GRANT_LIMIT = 10_000  # tokens and sessions remembered per process; past it the memory starts afresh
# a session's user and roles are read in full at least this often (a changed name or e-mail shows on the
# hot views within it; the checks that matter run in every request's statement)
SESSION_GRANT_LIFETIME = timedelta(minutes=1)

_TOKENS, _USERS, _ROLES = ApiToken.__table__, User.__table__, UserRole.__table__
# Parameters :auth_user, :auth_generation: the user is active, at the same session generation (which
# sign-out, deactivation, reactivation and every role change bump) and a rater. The marked views all
# serve a rater's own queue: the rater role passes each one's permission check (signed_in: any role;
# the label's save: rater), even if a role row was taken away without the generation's bump. A user
# without it (a lead whose project counts them as a rater) always gets the full check instead.
_STILL_A_RATER = (
    _USERS.c.id == bindparam("auth_user"),
    _USERS.c.active == true(),
    _USERS.c.session_generation == bindparam("auth_generation"),
    exists().where(_ROLES.c.user_id == bindparam("auth_user"), _ROLES.c.role == Role.rater),
)
# ... and :auth_token (PendingCheck.params), not revoked, is that user's. Uncorrelated: none of the
# tables is in the statements it is added to.
TOKEN_STILL_VALID = (
    exists()
    .where(
        _TOKENS.c.id == bindparam("auth_token"),
        _TOKENS.c.revoked_at.is_(None),
        _TOKENS.c.user_id == _USERS.c.id,
        *_STILL_A_RATER,
    )
    .correlate(None)
)  # never bound to a table of the statement it is added to
# A signed-in browser session's user, by the session cookie's user id and generation
# (auth.login.trusted_session): the image layer below Flask (api/hot_image.py) reads with it
SESSION_STILL_VALID = exists().where(*_STILL_A_RATER).correlate(None)
# the check alone: run when a checked statement found no row, to tell "no such row" from "refused"
_STILL_VALID_ALONE = {"token": select(TOKEN_STILL_VALID), "session": select(SESSION_STILL_VALID)}


@dataclass(frozen=True)
class CheckedStatement:
    """A hot-path read as sent for a caller checked in full (``plain``), and with the check of a
    bearer token (``token``) or a session (``session``) taken on trust in it."""

    plain: Any
    token: Any
    session: Any


def with_caller_check(stmt: Any) -> CheckedStatement:
    """The statement and its two checked forms, built once (at import)."""
    return CheckedStatement(stmt, stmt.where(TOKEN_STILL_VALID), stmt.where(SESSION_STILL_VALID))


class StaleGrant(Exception):
    """A checked statement found no row: the token may no longer admit its user (or the row is not
    there). The view is answered again after the full check."""


@dataclass(frozen=True)
class TokenGrant:
    """What the last full check of a token found (auth.services.authenticate_token)."""

    kind = "token"

    token_hash: str
    token_id: int
    user_id: int
    generation: int
    expires_at: datetime | None  # aware UTC
    stamped_at: datetime  # the token's last-use stamp as of that check (aware UTC)
    rows: tuple  # the token query's rows: the user and roles are built from them, as by the check

    def trusted_at(self, now: datetime, resolution: timedelta) -> bool:
        """Usable until the token expires, and while its last-use stamp needs no update."""
        if self.expires_at is not None and now >= self.expires_at:
            return False
        return now - self.stamped_at <= resolution

    @property
    def key(self) -> str:
        return self.token_hash

    @property
    def params(self) -> dict[str, Any]:
        """TOKEN_STILL_VALID's parameters."""
        return {
            "auth_token": self.token_id,
            "auth_user": self.user_id,
            "auth_generation": self.generation,
        }


def session_key(user_id: int) -> str:
    """A session grant's key among the grants (a token's is its hash: hex, never this form)."""
    return f"session:{user_id}"


@dataclass(frozen=True)
class SessionGrant:
    """What the session user loader last read of a rater (auth.services.user_with_roles): taken on
    trust for a session cookie carrying the same user and generation, for SESSION_GRANT_LIFETIME."""

    kind = "session"
    user_id: int
    generation: int
    loaded_at: datetime  # aware UTC
    rows: tuple  # the user-and-roles rows: the user is built from them, as by the loader

    def trusted_for(self, generation: Any, now: datetime) -> bool:
        return generation == self.generation and now - self.loaded_at <= SESSION_GRANT_LIFETIME

    @property
    def key(self) -> str:
        return session_key(self.user_id)

    @property
    def params(self) -> dict[str, Any]:
        """SESSION_STILL_VALID's parameters."""
        return {"auth_user": self.user_id, "auth_generation": self.generation}


Grant = TokenGrant | SessionGrant


class Grants:
    """One app's grants in this process, by key (threads share it)."""

    def __init__(self) -> None:
        self._grants: dict[str, Grant] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Grant | None:
        return self._grants.get(key)

    def trusted_token(
        self, token_hash: str, now: datetime, resolution: timedelta
    ) -> TokenGrant | None:
        """The token's grant if it may be taken on trust now (TokenGrant.trusted_at), else None."""
        grant = self._grants.get(token_hash)
        if isinstance(grant, TokenGrant) and grant.trusted_at(now, resolution):
            return grant
        return None

    def put(self, grant: Grant) -> None:
        with self._lock:
            if len(self._grants) >= GRANT_LIMIT and grant.key not in self._grants:
                self._grants.clear()
            self._grants[grant.key] = grant

    def drop(self, key: str) -> None:
        with self._lock:
            self._grants.pop(key, None)


@dataclass
class PendingCheck:
    """A caller taken on trust in this request; ``confirmed`` once a checked statement found its row."""

    grant: Grant
    confirmed: bool = False

    @property
    def params(self) -> dict[str, Any]:
        return self.grant.params


def pending_check(session: Session) -> PendingCheck | None:
    """The session's caller still to be checked, if any."""
    check = session.info.get(PENDING)
    return None if check is None or check.confirmed else check


def checked(session: Session, stmt: CheckedStatement, params: dict) -> tuple[Any, dict]:
    """The statement to run and its parameters: the form with the caller's check while the caller
    is still to be checked, else the plain one. Pass its first row to confirmed()."""
    check = pending_check(session)
    if check is None:
        return stmt.plain, params
    return getattr(stmt, check.grant.kind), {**params, **check.params}


def confirmed(session: Session, row: Any) -> Any:
    """The row a statement from checked() found. If the caller was still to be checked and no row came
    back, the check runs alone (one more statement): the caller still passes, and the miss is an
    answer (an empty queue, another rater's item); or StaleGrant (see the module's docstring)."""
    check = pending_check(session)
    if check is not None:
        if (
            row is None
            and not session.connection()
            .execute(_STILL_VALID_ALONE[check.grant.kind], check.params)
            .scalar()
        ):
            raise StaleGrant
        check.confirmed = True
    return row
