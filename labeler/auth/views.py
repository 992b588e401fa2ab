"""Sign-in (single sign-on, or the development sign-in), sign-out and personal API tokens."""

from __future__ import annotations

import re
from pathlib import Path

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select

from ..db import get_session, utcnow
from ..errors import LabelerError, ValidationError, on_form_error
from .login import safe_next, sign_in, sign_out
from .models import ApiToken, User
from .permissions import signed_in
from .services import (
    DEFAULT_TOKEN_DAYS,
    TOKEN_DAYS_CHOICES,
    NotAdmitted,
    SignInIdentity,
    admit,
    create_token,
    find_user_by_email,
    revoke_token,
)

bp = Blueprint("auth", __name__)

SSO_NEXT_KEY = "sso.next"  # {state: the app path to return to} per pending sign-in


def _home() -> str:
    return url_for("projects.home")


@bp.get("/auth/login")
def login():
    if current_user.is_authenticated:
        return redirect(safe_next(request.args.get("next")) or _home())
    nxt = safe_next(request.args.get("next")) or ""
    users = []
    if current_app.config["AUTH_MODE"] == "dev":
        users = (
            get_session()
            .scalars(select(User).where(User.active.is_(True)).order_by(User.email))
            .all()
        )
    return render_template(
        "auth/login.html", mode=current_app.config["AUTH_MODE"], users=users, next=nxt
    )


@bp.post("/auth/dev-login")
def dev_login():
    """Development sign-in: exists only when LABELER_AUTH=dev (refused in production by config)."""
    if current_app.config["AUTH_MODE"] != "dev":
        abort(404)
    user = find_user_by_email(get_session(), request.form.get("email", ""))
    if user is None or not user.active or not user.roles:
        return render_template(
            "auth/refused.html", message="No active account with that e-mail."
        ), 403
    sign_in(user)
    user.last_login_at = utcnow()  # as the SSO sign-in records it: the users page says "signed in"
    return redirect(safe_next(request.form.get("next")) or _home())


@bp.get("/auth/sso/start")
def sso_start():
    """Start MSAL's auth-code flow; the pending flow waits in the session (sso.FLOWS_KEY)."""
    from . import sso

    # The Flask session is sso.py's store: begin_login adds this flow to the pending ones (other
    # tabs' logins stay), complete_login later removes only the flow it used.
    url = sso.begin_login(sso_settings(), session)
    state = session[sso.FLOWS_KEY][-1]["state"]
    pending = {f["state"] for f in session[sso.FLOWS_KEY]}
    targets = {k: v for k, v in (session.get(SSO_NEXT_KEY) or {}).items() if k in pending}
    targets[state] = safe_next(request.args.get("next")) or ""
    session[SSO_NEXT_KEY] = targets
    return redirect(url)


@bp.get("/auth/redirect")
def sso_redirect():
    """The provider sends the browser back here: redeem the code, validate, admit, sign in."""
    from . import sso

    settings = sso_settings()
    state = request.args.get("state", "")
    try:
        ident = sso.complete_login(settings, session, request.args.to_dict())
    except sso.SSOError as exc:
        current_app.logger.warning("sign-in refused: %s", exc)
        status = 502 if exc.code == "provider_unreachable" else 400
        message = SSO_ERROR_MESSAGES.get(exc.code, "The sign-in could not be completed.")
        return render_template("auth/refused.html", message=message, code=exc.code), status
    targets = dict(session.get(SSO_NEXT_KEY) or {})
    nxt = targets.pop(state, "")
    still_pending = session.get(sso.FLOWS_KEY) or []
    identity = SignInIdentity(
        oid=ident.oid,
        tenant_id=ident.tenant_id,
        email=ident.email,
        name=ident.name,
        roles=tuple(ident.roles),
    )
    db = get_session()
    try:
        user = admit(db, identity, use_role_claims=current_app.config["SSO_ROLE_CLAIMS"])
    except NotAdmitted as exc:
        db.rollback()
        current_app.logger.warning(
            "sign-in refused: oid=%s tid=%s not admitted", ident.oid, ident.tenant_id
        )
        session[SSO_NEXT_KEY] = targets
        return render_template("auth/refused.html", message=exc.message, code=exc.code), 403
    sign_in(user)  # a fresh session; logins still pending in other tabs are kept
    if still_pending:
        session[sso.FLOWS_KEY] = still_pending
        session[SSO_NEXT_KEY] = targets
    return redirect(safe_next(nxt) or _home())


SSO_ERROR_MESSAGES = {
    "no_flow": "No sign-in was in progress in this browser (it may have expired). Please start again.",
    "state_mismatch": "This sign-in response does not belong to a sign-in started in this browser.",
    "nonce_mismatch": "The identity token does not belong to this sign-in.",
    "provider_error": "Microsoft refused the sign-in.",
    "provider_unreachable": "The sign-in service could not be reached. Please try again later.",
    "invalid_response": "The sign-in service sent an unusable response.",
    "invalid_token": "The identity token is not valid.",
    "invalid_signature": "The identity token's signature could not be verified.",
    "wrong_audience": "The identity token was issued for another application.",
    "wrong_issuer": "The identity token was issued by an unexpected authority.",
    "expired": "The identity token has expired.",
    "not_yet_valid": "The identity token is not valid yet.",
    "missing_claim": "The identity token lacks required information.",
    "tenant_not_allowed": "Accounts of your organisation may not sign in to this labeler.",
}


@bp.post("/auth/logout")
def logout():
    """End the session (every copy of its cookie); after single sign-on, also sign out at the provider."""
    was_sso = current_app.config["AUTH_MODE"] == "sso" and current_user.is_authenticated
    sign_out()
    if was_sso and current_app.config.get("SSO_AUTHORITY"):
        from . import sso

        settings = sso_settings()
        try:
            end = sso.end_session_url(settings, settings.post_logout_redirect_uri)
        except sso.SSOError as exc:  # signed out here in any case; say so instead of failing
            current_app.logger.warning("provider sign-out unavailable: %s", exc)
            flash(
                "Signed out of the labeler. The sign-in service could not be reached to end that session too."
            )
            end = None
        if end:
            return redirect(end)
    return redirect(url_for("auth.login"))


def sso_settings():
    """SSOSettings from the LABELER_SSO_* configuration."""
    from .sso import SSOSettings

    cfg = current_app.config
    if not (cfg.get("SSO_AUTHORITY") and cfg.get("SSO_CLIENT_ID")):
        raise LabelerError(
            "Single sign-on is not configured: set LABELER_SSO_AUTHORITY, LABELER_SSO_CLIENT_ID, "
            "LABELER_SSO_CLIENT_SECRET (or LABELER_SSO_CLIENT_CERTIFICATE) and LABELER_SSO_REDIRECT_URI.",
            code="sso_not_configured",
            status=503,
        )
    certificate = None
    if cfg.get("SSO_CLIENT_CERTIFICATE"):
        certificate = _client_certificate(cfg["SSO_CLIENT_CERTIFICATE"])
    return SSOSettings(
        authority=cfg["SSO_AUTHORITY"],
        client_id=cfg["SSO_CLIENT_ID"],
        client_secret=None if certificate else cfg.get("SSO_CLIENT_SECRET"),
        client_certificate=certificate,
        redirect_uri=cfg.get("SSO_REDIRECT_URI") or url_for("auth.sso_redirect", _external=True),
        post_logout_redirect_uri=cfg.get("SSO_POST_LOGOUT_REDIRECT_URI")
        or url_for("auth.login", _external=True),
        allowed_tenants=tuple(cfg.get("SSO_ALLOWED_TENANTS") or ()),
    )


def _client_certificate(path: str) -> dict[str, str]:
    """MSAL's certificate credential from a PEM file with the private key and its certificate."""
    pem = Path(path).read_text()
    cert = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.DOTALL)
    if cert is None or "PRIVATE KEY-----" not in pem:
        raise LabelerError(
            f"LABELER_SSO_CLIENT_CERTIFICATE ({path}) must hold the private key and the certificate",
            code="sso_not_configured",
            status=503,
        )
    # with public_certificate and no thumbprint, MSAL computes the SHA-256 thumbprint itself
    return {"private_key": pem, "public_certificate": cert.group(0)}


def _tokens_page(new_token: str | None = None, error: str | None = None, status: int = 200):
    rows = (
        get_session()
        .scalars(
            select(ApiToken)
            .where(ApiToken.user_id == current_user.id)
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        )
        .all()
    )
    html = render_template(
        "auth/tokens.html",
        tokens=rows,
        new_token=new_token,
        error=error,
        now=utcnow(),
        day_choices=TOKEN_DAYS_CHOICES,
        default_days=DEFAULT_TOKEN_DAYS,
    )
    # a page showing a raw token must not be kept by the browser or a proxy
    return html, status, {"Cache-Control": "no-store"}


@bp.get("/account/tokens")
@signed_in
def tokens():
    return _tokens_page()


def _days_from_form() -> int | None:
    value = request.form.get("expires_in_days", str(DEFAULT_TOKEN_DAYS)).strip()
    choices = {str(d) if d else "none": d for d in TOKEN_DAYS_CHOICES}
    if value not in choices:
        raise ValidationError(
            "Choose how long the token stays valid: 30, 90 or 365 days, or never."
        )
    return choices[value]


@bp.post("/account/tokens")
@signed_in
def tokens_create():
    """Create a token and show it in this response only: it is never stored in the session cookie."""
    db = get_session()
    on_form_error(lambda exc: _tokens_page(error=exc.message, status=exc.status))
    _token, raw = create_token(
        db,
        current_user,
        current_user,
        request.form.get("name", ""),
        expires_in_days=_days_from_form(),
    )
    return _tokens_page(new_token=raw)


@bp.post("/account/tokens/<int:token_id>/revoke")
@signed_in
def tokens_revoke(token_id: int):
    db = get_session()
    revoke_token(db, current_user, token_id)
    flash("Token revoked.")
    return redirect(url_for("auth.tokens"))
