"""`labeler deploy ...`: configuration for the machines around the app."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from .nginx import DeployError, render


@click.group("deploy")
def deploy_cli() -> None:
    """Configuration for a production deployment (nginx in front of the app servers)."""


@deploy_cli.command("nginx")
@click.option(
    "--upstream",
    "upstreams",
    multiple=True,
    required=True,
    help="An app server (gunicorn) as HOST:PORT; repeat for each.",
)
@click.option(
    "--server-name", required=True, help="The site's host name, e.g. labeler.example.org."
)
@click.option(
    "--static-root",
    default=None,
    help="Where nginx finds the app's static/ folder (default: this installation's).",
)
@click.option("--tls-cert", default=None, help="The certificate chain (PEM) for https.")
@click.option("--tls-key", default=None, help="Its private key (PEM).")
@click.option(
    "--listen",
    default=None,
    help="nginx's listen address (default 443 with TLS, else 80), e.g. 127.0.0.1:8080.",
)
@click.option(
    "--files-root",
    default=None,
    help="With LABELER_X_ACCEL_REDIRECT: where nginx finds the stored files (default: the app's "
    "local storage folder).",
)
@with_appcontext
def nginx_cmd(upstreams, server_name, static_root, tls_cert, tls_key, listen, files_root) -> None:
    """Print an nginx configuration for the given app servers (for /etc/nginx/conf.d/)."""
    try:
        text = render(
            current_app,
            upstreams=list(upstreams),
            server_name=server_name,
            static_root=static_root,
            tls_cert=tls_cert,
            tls_key=tls_key,
            listen=listen,
            files_root=files_root,
        )
    except DeployError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(text, nl=False)
