"""The ``hookhub`` command: serve, api, worker, migrate, keys, contacts import, ...

Every option can also be set by the environment variable its ``--help`` names; the command
line wins. Settings are built once here and passed down.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from hookhub import __version__
from hookhub.cli_automations import automations_app
from hookhub.cli_common import DatabaseUrl, Host, LogLevel, Port, console, err_console
from hookhub.cli_common import open_services as _services
from hookhub.cli_common import settings_from as _settings
from hookhub.cli_email import email_app, emails_app, say_where_email_goes
from hookhub.cli_keys import keys_app
from hookhub.cli_secrets import secrets_app
from hookhub.cli_users import users_app
from hookhub.config import Settings
from hookhub.logs import configure_logging
from hookhub.services import Services

app = typer.Typer(
    name="hookhub",
    help="Hookhub: contacts platform built around inbound and outbound webhooks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
inbound_app = typer.Typer(help="Work with inbound webhooks.", no_args_is_help=True)
contacts_app = typer.Typer(help="Work with contacts.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(contacts_app, name="contacts")
app.add_typer(inbound_app, name="inbound")
app.add_typer(secrets_app, name="secrets")
app.add_typer(email_app, name="email")
app.add_typer(emails_app, name="emails")
app.add_typer(automations_app, name="automations")
app.add_typer(users_app, name="users")


def _bootstrap_key(services: Services) -> None:
    """HOOKHUB_API_KEY becomes an admin key; without one, the first start prints a new key."""
    configured = services.settings.api_key
    if configured is not None:
        services.keys.adopt("HOOKHUB_API_KEY", configured.get_secret_value())
        return
    if not services.keys.has_any():
        _info, key = services.keys.create("first start")
        # Printed, never logged: this is the only time the key exists outside its hash.
        print(f"Created an admin API key (shown once, store it now): {key}", flush=True)


def _run_http(settings: Settings, *, workers: bool) -> None:
    import uvicorn

    from hookhub.api.app import create_app
    from hookhub.api.http import server_config

    configure_logging(settings.log_level, settings.log_format)
    services = _services(settings)
    _bootstrap_key(services)
    if workers:
        say_where_email_goes(settings)
    application = create_app(services, run_workers=workers)
    services.config_watch.start()
    config = server_config(
        application,
        host=settings.host,
        port=settings.port,
        timeout_graceful_shutdown=int(settings.delivery_timeout) + 5,
    )
    _settle_heap()
    try:
        uvicorn.Server(config).run()
    finally:
        services.close()


def _settle_heap() -> None:
    """Tune the cyclic garbage collector for a long-running server, once start-up is done.

    Everything loaded so far (modules, settings, compiled statements) lives as long as the
    process: frozen, no collection scans it again. A busy worker allocates and frees a few
    dozen container objects per request, almost none of them in cycles, so the default
    threshold (a collection every 700 net allocations) collected about every 50 deliveries
    and took 5-7% of the delivery worker's CPU (400 collections, 0.43-0.52 s in a run of
    20,000 deliveries); at 20,000 it collected once in that run, in 5 ms.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


@app.command()
def serve(
    host: Host = None,
    port: Port = None,
    database_url: DatabaseUrl = None,
    log_level: LogLevel = None,
) -> None:
    """Run everything in one process: API, inbound receiver, deliveries and inbound rules."""
    settings = _settings(host=host, port=port, database_url=database_url, log_level=log_level)
    _run_http(settings, workers=True)


@app.command()
def api(
    host: Host = None,
    port: Port = None,
    database_url: DatabaseUrl = None,
    log_level: LogLevel = None,
) -> None:
    """Run the HTTP side only (API and inbound receiver), without background workers."""
    settings = _settings(host=host, port=port, database_url=database_url, log_level=log_level)
    _run_http(settings, workers=False)


@app.command()
def worker(
    database_url: DatabaseUrl = None,
    log_level: LogLevel = None,
) -> None:
    """Run the background work only (deliveries, inbound rules, retention); run many against
    PostgreSQL."""
    import signal

    import uvloop

    from hookhub.email.campaign_loop import CampaignLoop
    from hookhub.inbound.processor import InboundProcessor
    from hookhub.services import (
        build_automation_loop,
        build_date_trigger_loop,
        build_email_worker,
        build_retention_loop,
        build_tracking_processor,
        build_worker,
    )
    from hookhub.supervisor import Supervisor

    settings = _settings(database_url=database_url, log_level=log_level)
    configure_logging(settings.log_level, settings.log_format)
    services = _services(settings)
    say_where_email_goes(settings)

    async def main() -> None:
        delivery = build_worker(services)
        processor = InboundProcessor(services.inbound, poll_interval=settings.poll_interval)
        retention = build_retention_loop(services)
        supervisor = Supervisor(stall_after=settings.loop_stall_after)
        supervisor.add("delivery", delivery)
        supervisor.add("inbound", processor)
        supervisor.add("retention", retention)
        supervisor.add("campaigns", CampaignLoop(services.db, settings))
        supervisor.add("tracking", build_tracking_processor(services))
        email_worker = build_email_worker(services)
        supervisor.add("email", email_worker)
        supervisor.add("automation-dates", build_date_trigger_loop(services))
        supervisor.add("automations", build_automation_loop(services))
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, supervisor.stop)
        try:
            await supervisor.run()
        finally:
            await delivery.transport.close()
            await email_worker.transport.aclose()

    _settle_heap()
    try:
        uvloop.run(main())
    finally:
        services.close()


@app.command()
def purge(
    requests: Annotated[
        bool,
        typer.Option(
            "--requests",
            help="Purge the inbound request log (HOOKHUB_RETENTION_REQUESTS) and dedupe keys"
            " past the dedupe window (HOOKHUB_DEDUPE_RETENTION).",
        ),
    ] = False,
    messages: Annotated[
        bool,
        typer.Option(
            "--messages",
            help="Purge messages whose deliveries are all final, with their deliveries and"
            " attempts (HOOKHUB_RETENTION_MESSAGES).",
        ),
    ] = False,
    emails: Annotated[
        bool,
        typer.Option(
            "--emails",
            help="Purge final emails with their timelines (HOOKHUB_RETENTION_EMAILS) and"
            " Idempotency-Key answers past 24 hours.",
        ),
    ] = False,
    automations: Annotated[
        bool,
        typer.Option(
            "--automations",
            help="Purge finished automation enrollments with their step logs"
            " (HOOKHUB_RETENTION_AUTOMATIONS); active ones are never purged.",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Delete what is past its retention now, and print how many rows of each kind went.

    Without --requests, --messages, --emails or --automations, all four. Batches of
    HOOKHUB_RETENTION_BATCH rows, each its own transaction: safe to run while Hookhub serves.
    A retention of 0 keeps forever.
    """
    from hookhub.retention import RetentionService

    settings = _settings(database_url=database_url)
    configure_logging(settings.log_level, settings.log_format)
    services = _services(settings)
    both = not requests and not messages and not emails and not automations
    try:
        counts = RetentionService(services.db, settings).purge(
            requests=requests or both,
            messages=messages or both,
            emails=emails or both,
            automations=automations or both,
            dry_run=dry_run,
        )
    finally:
        services.close()
    if counts.skipped:
        err_console.print("Another process is purging right now; nothing was deleted.")
        raise typer.Exit(1)
    shown = (
        {
            "requests": counts.requests,
            "dedupe_keys": counts.dedupe_keys,
            "unlogged_counts": counts.unlogged_counts,
        }
        if requests or both
        else {}
    )
    if messages or both:
        shown.update(
            messages=counts.messages, deliveries=counts.deliveries, attempts=counts.attempts
        )
    if emails or both:
        shown.update(
            emails=counts.emails,
            email_events=counts.email_events,
            idempotency_keys=counts.idempotency_keys,
        )
    if automations or both:
        shown.update(enrollments=counts.enrollments, step_logs=counts.step_logs)
    if dry_run:
        console.print("Dry run, nothing deleted; these would be:")
    for kind, count in shown.items():
        console.print(f"{kind}: {count}")


@app.command()
def listen(
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 9000,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    secret: Annotated[
        list[str] | None,
        typer.Option("--secret", help="whsec_ secret to verify signatures with (repeatable)."),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Answer 401 when a signature does not verify.")
    ] = False,
) -> None:
    """Print every webhook POSTed to a local port, and whether its signature verifies."""
    from hookhub.outbound.listen import listen as run_listen

    run_listen(host, port, secret or [], console, strict=strict)


@app.command("migrate")
def migrate_command(database_url: DatabaseUrl = None) -> None:
    """Create or upgrade the database schema, then exit."""
    settings = _settings(database_url=database_url)
    services = _services(settings)
    services.close()
    console.print(f"Database is up to date ({services.db.backend}).")


@app.command()
def version() -> None:
    """Print Hookhub's version."""
    console.print(__version__)


@contacts_app.command("import")
def contacts_import(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="CSV with an 'email' column."
        ),
    ],
    list_id: Annotated[
        int | None, typer.Option("--list", help="Add every contact to this list.")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Import (upsert) contacts from a CSV file of any size."""
    from hookhub.crm.importer import ContactImporter
    from hookhub.errors import HookhubError

    services = _services(_settings(database_url=database_url))
    size = file.stat().st_size
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
    )
    try:
        with progress, file.open("rb") as source:
            task = progress.add_task("importing", total=size)
            report = ContactImporter(services.crm).run(
                source,
                list_id=list_id,
                on_progress=lambda n: progress.advance(task, n),
                name=file.name,
            )
    except HookhubError as exc:
        err_console.print(f"[red]Import refused:[/red] {exc.message}")
        raise typer.Exit(1) from exc
    finally:
        services.close()
    console.print(
        f"import: {report.id}  created: {report.created}  updated: {report.updated}  "
        f"unchanged: {report.unchanged}  rejected: {report.rejected}"
    )
    if report.rejections:
        table = Table("line", "reason", title="Rejected rows")
        for line, reason in report.rejections:
            table.add_row(str(line), reason)
        console.print(table)
        if report.rejected > len(report.rejections):
            console.print(f"(and {report.rejected - len(report.rejections)} more)")


@inbound_app.command("send")
def inbound_send(
    url: Annotated[str, typer.Argument(help="The inbound webhook's receive URL.")],
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="stripe, shopify, calendly, typeform, github, standard, generic, mailgun, "
            "postmark or sendgrid (with --option private_key=...).",
        ),
    ],
    file: Annotated[
        Path,
        typer.Option("--file", exists=True, dir_okay=False, help="The payload to send, as-is."),
    ],
    secret: Annotated[
        str | None,
        typer.Option(
            "--secret",
            envvar="HOOKHUB_INBOUND_SECRET",
            show_envvar=True,
            help="The webhook's secret.",
        ),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", help="A provider option as key=value (e.g. topic=orders/create)."),
    ] = None,
) -> None:
    """Sign a payload the way the provider does and POST it: test your setup end to end."""
    import time
    import urllib.error
    import urllib.request

    from hookhub.errors import HookhubError
    from hookhub.inbound.providers import get_provider

    options = dict(item.split("=", 1) for item in option or [] if "=" in item)
    body = file.read_bytes()
    try:
        body, headers = get_provider(source).signed_request(
            body, secret or "", time.time(), options
        )
    except HookhubError as exc:
        err_console.print(f"[red]Cannot sign:[/red] {exc.message}")
        raise typer.Exit(2) from exc
    headers.setdefault("Content-Type", "application/json")
    headers["User-Agent"] = f"hookhub-cli/{__version__}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, answer = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, answer = exc.code, exc.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        err_console.print(f"[red]Could not send:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"{status} {answer.decode('utf-8', errors='replace')}")
    if status >= 400:
        raise typer.Exit(1)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
