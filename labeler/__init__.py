"""labeler: dermatologists label skin photographs; leads build trustworthy training sets."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from LABELER_* settings (and an optional .env), with explicit overrides on top."""
    from . import cli, db, errors, web
    from .allocation.views import bp as allocation_bp
    from .api import bp as api_bp
    from .api import hot_image
    from .assist import compute as assist_compute
    from .assist.views import bp as assist_bp
    from .auth import login
    from .auth.admin_views import bp as admin_bp
    from .auth.views import bp as auth_bp
    from .capture.views import bp as capture_bp
    from .cases.views import bp as cases_bp
    from .config import ConfigError, add_security_headers, load_settings, security_headers
    from .guidelines.views import bp as guidelines_bp
    from .images.storage import StorageConfigError, storage_from_config
    from .images.views import bp as images_bp
    from .labeling.flag_views import bp as flags_bp
    from .labeling.views import bp as labeling_bp
    from .projects import member_views, settings_views  # noqa: F401  (their routes join projects_bp)
    from .projects.views import bp as projects_bp
    from .reports.views import bp as reports_bp
    from .training import prescreen
    from .training.views import bp as training_bp
    from .webhooks import dispatch as webhook_dispatch
    from .webhooks.views import bp as webhooks_bp

    settings = load_settings(config)
    app = Flask(
        __name__,
        instance_path=settings["INSTANCE_PATH"],
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    app.config.update(settings)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    if app.config["TRUSTED_PROXIES"]:
        # behind nginx (`labeler deploy nginx`): the client's address and https come from the
        # proxy's X-Forwarded-* headers, trusting only as many hops as there are proxies
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    web.init_app(app)  # id converters and body limits: before any route or sign-in hook
    db.init_app(app)
    try:
        app.extensions["labeler_storage"] = storage_from_config(app.config)
    except StorageConfigError as exc:
        raise ConfigError(str(exc)) from None
    login.init_app(app)
    errors.register_error_handlers(app, db.rollback_request)
    for bp in (auth_bp, projects_bp, images_bp, allocation_bp, api_bp):
        app.register_blueprint(bp)
    app.register_blueprint(labeling_bp)
    app.register_blueprint(cases_bp)
    app.register_blueprint(guidelines_bp)
    app.register_blueprint(flags_bp)
    app.register_blueprint(reports_bp)
    app.register_blueprint(training_bp)
    app.register_blueprint(assist_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(capture_bp)
    app.register_blueprint(webhooks_bp)
    prescreen.init_app(app)  # training's step after every image import
    assist_compute.init_app(app)  # pre-labeling's suggestions for every import's new images
    webhook_dispatch.init_app(app)  # deliveries are sent once their transaction commits
    cli.init_app(app)
    headers = [(name.lower(), (name, value)) for name, value in security_headers(app.config)]
    app.extensions[hot_image.SECURITY_HEADERS] = headers

    @app.after_request
    def _security_headers(resp):
        add_security_headers(resp.headers, headers)
        return resp

    @app.context_processor
    def _roles():
        from .auth.models import Role

        return {"Role": Role}

    hot_image.install(app)  # the display image below Flask when it can be (after every route)
    return app
