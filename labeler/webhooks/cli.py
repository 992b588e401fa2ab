"""`labeler webhooks ...`: register, list and remove a project's webhooks; read and resend deliveries."""

from __future__ import annotations

import json
import time

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from ..db import CommandSession, database
from ..events import EVENTS
from ..projects.services import find_project
from .delivery import deliver_due, next_due_in
from .services import (
    create_endpoint,
    delete_endpoint,
    delivery_log,
    endpoint_dict,
    get_delivery,
    get_endpoint,
    project_endpoints,
    redeliver,
)

webhooks_cli = AppGroup("webhooks", help="Webhooks: signed JSON POSTs when project events happen.")


@webhooks_cli.command("add")
@click.argument("project")
@click.argument("url")
@click.option(
    "--event",
    "events",
    multiple=True,
    required=True,
    type=click.Choice(list(EVENTS)),
    help="An event to send (repeat for several).",
)
@click.option("--description", default=None)
@with_appcontext
def add_cmd(project: str, url: str, events: tuple[str, ...], description: str | None) -> None:
    """Register URL for a PROJECT's (id or name) events; prints the id and the secret (shown once)."""
    with CommandSession() as s:
        endpoint, secret = create_endpoint(
            s,
            None,
            find_project(s, project),
            url,
            list(events),
            config=current_app.config,
            description=description,
        )
        s.flush()
        click.echo(f"webhook {endpoint.id}")
        click.echo(f"secret {secret}  (shown only now)")


@webhooks_cli.command("list")
@click.argument("project")
@with_appcontext
def list_cmd(project: str) -> None:
    """A PROJECT's webhooks, as JSON lines."""
    with CommandSession() as s:
        for endpoint in project_endpoints(s, find_project(s, project)):
            click.echo(json.dumps(endpoint_dict(endpoint)))


@webhooks_cli.command("remove")
@click.argument("endpoint_id", type=int)
@with_appcontext
def remove_cmd(endpoint_id: int) -> None:
    """Remove a webhook and its delivery log."""
    with CommandSession() as s:
        delete_endpoint(s, None, get_endpoint(s, endpoint_id))
    click.echo(f"webhook {endpoint_id} removed")


@webhooks_cli.command("deliveries")
@click.argument("endpoint_id", type=int)
@with_appcontext
def deliveries_cmd(endpoint_id: int) -> None:
    """A webhook's latest deliveries (newest first), as JSON lines."""
    with CommandSession() as s:
        for row in delivery_log(s, get_endpoint(s, endpoint_id)):
            click.echo(json.dumps(row))


@webhooks_cli.command("redeliver")
@click.argument("delivery_id", type=int)
@with_appcontext
def redeliver_cmd(delivery_id: int) -> None:
    """Send a delivery again (with a fresh budget of attempts)."""
    with CommandSession() as s:
        redeliver(s, None, get_delivery(s, delivery_id), config=current_app.config)
    click.echo(f"delivery {delivery_id} is due now")


@webhooks_cli.command("deliver")
@click.option(
    "--wait", is_flag=True, help="Keep going until no delivery is pending (retries included)."
)
@with_appcontext
def deliver_cmd(wait: bool) -> None:
    """Send every delivery that is due now (for cron, or after the broker was down)."""
    factory = database().session_factory
    sent = deliver_due(factory, current_app.config)
    while wait:
        pause = next_due_in(factory)
        if pause is None:
            break
        time.sleep(min(pause, 30.0))
        sent += deliver_due(factory, current_app.config)
    click.echo(f"{sent} attempt{'' if sent == 1 else 's'} sent")
