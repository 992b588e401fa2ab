"""Sign-in (single sign-on, or the development sign-in), sign-out and personal API tokens."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user
from sqlalchemy import select

from ..db import get_session
from ..errors import LabelerError
from .permissions import signed_in
from .login import safe_next, sign_in, sign_out
from .models import ApiToken, User
from .services import NotAdmitted, SignInIdentity, admit, create_token, find_user_by_email, revoke_token

bp = Blueprint("auth", __name__)

SSO_FLOW_KEY = "sso_flow"


def _home() -> str:
    return url_for("projects.home")


@bp.get("/auth/login")
def login():
    if current_user.is_authenticated:
        return redirect(safe_next(request.args.get("next")) or _home())
    nxt = safe_next(request.args.get("next")) or ""
    users = []
    if current_app.config["AUTH_MODE"] == "dev":
        users = get_session().scalars(select(User).where(User.active.is_(True)).order_by(User.email)).all()
    return render_template("auth/login.html", mode=current_app.config["AUTH_MODE"], users=users, next=nxt)


@bp.post("/auth/dev-login")
def dev_login():
    """Development sign-in: exists only when LABELER_AUTH=dev (refused in production by config)."""
    if current_app.config["AUTH_MODE"] != "dev":
        abort(404)
    user = find_user_by_email(get_session(), request.form.get("email", ""))
    if user is None or not user.active or not user.roles:
        return render_template("auth/refused.html", message="No active account with that e-mail."), 403
    sign_in(user)
    get_session().commit()
    return redirect(safe_next(request.form.get("next")) or _home())


@bp.get("/auth/sso/start")
def sso_start():
    from . import sso

    settings = sso_settings()
    session["login_next"] = safe_next(request.args.get("next")) or ""
    store: dict = {}
    url = sso.begin_login(settings, store)
    session[SSO_FLOW_KEY] = store
    return redirect(url)


@bp.get("/auth/redirect")
def sso_redirect():
    from . import sso

    store = dict(session.pop(SSO_FLOW_KEY, {}) or {})
    nxt = session.pop("login_next", "")
    try:
        ident = sso.complete_login(sso_settings(), store, request.args.to_dict())
    except sso.SSOError as exc:
        current_app.logger.warning("sign-in refused: %s (%s)", exc.code, exc)
        return render_template("auth/refused.html", message=f"Sign-in failed: {exc}", code=exc.code), 400
    identity = SignInIdentity(
        oid=ident.oid, tenant_id=ident.tenant_id, email=ident.email, name=ident.name, roles=tuple(ident.roles)
    )
    db = get_session()
    try:
        user = admit(db, identity, use_role_claims=current_app.config["SSO_ROLE_CLAIMS"])
    except NotAdmitted as exc:
        db.rollback()
        return render_template("auth/refused.html", message=exc.message, code=exc.code), 403
    sign_in(user)
    db.commit()
    return redirect(safe_next(nxt) or _home())


@bp.post("/auth/logout")
def logout():
    was_sso = current_app.config["AUTH_MODE"] == "sso" and current_user.is_authenticated
    sign_out()
    if was_sso and current_app.config.get("SSO_AUTHORITY"):
        from . import sso

        end = sso.end_session_url(sso_settings(), url_for("auth.login", _external=True))
        if end:
            return redirect(end)
    return redirect(url_for("auth.login"))


def sso_settings():
    from .sso import SSOSettings

    cfg = current_app.config
    if not (cfg.get("SSO_AUTHORITY") and cfg.get("SSO_CLIENT_ID")):
        raise LabelerError(
            "Single sign-on is not configured: set LABELER_SSO_AUTHORITY, LABELER_SSO_CLIENT_ID, "
            "LABELER_SSO_CLIENT_SECRET and LABELER_SSO_REDIRECT_URI.",
            code="sso_not_configured",
            status=503,
        )
    return SSOSettings(
        authority=cfg["SSO_AUTHORITY"],
        client_id=cfg["SSO_CLIENT_ID"],
        client_secret=cfg.get("SSO_CLIENT_SECRET"),
        redirect_uri=cfg.get("SSO_REDIRECT_URI") or url_for("auth.sso_redirect", _external=True),
        allowed_tenants=tuple(cfg.get("SSO_ALLOWED_TENANTS") or ()),
    )


@bp.get("/account/tokens")
@signed_in
def tokens():
    rows = get_session().scalars(
        select(ApiToken).where(ApiToken.user_id == current_user.id).order_by(ApiToken.created_at.desc())
    ).all()
    return render_template("auth/tokens.html", tokens=rows, new_token=session.pop("new_token", None))


@bp.post("/account/tokens")
@signed_in
def tokens_create():
    db = get_session()
    _token, raw = create_token(db, current_user, current_user, request.form.get("name", ""))
    db.commit()
    session["new_token"] = raw  # shown once on the next page, then dropped
    return redirect(url_for("auth.tokens"))


@bp.post("/account/tokens/<int:token_id>/revoke")
@signed_in
def tokens_revoke(token_id: int):
    db = get_session()
    revoke_token(db, current_user, token_id)
    db.commit()
    flash("Token revoked.")
    return redirect(url_for("auth.tokens"))
