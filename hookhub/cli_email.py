"""``hookhub email send`` (queue a quick test email) and ``hookhub emails`` (list, show).

They work through the services, not over HTTP: ``hookhub serve`` or ``hookhub worker`` (against
the same database) sends what ``email send`` queues; without HOOKHUB_SMTP_URL it is captured
and ``hookhub emails show ID --raw`` prints the message.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from hookhub.cli_common import DatabaseUrl, console, err_console
from hookhub.cli_common import open_services as _services
from hookhub.cli_common import settings_from as _settings
from hookhub.config import Settings
from hookhub.errors import HookhubError
from hookhub.records.email import STATUSES

email_app = typer.Typer(help="Send email.", no_args_is_help=True)
emails_app = typer.Typer(
    help="List emails (captured or sent); `hookhub emails show ID` for one.",
    invoke_without_command=True,
)


def say_where_email_goes(settings: Settings) -> None:
    """One line at start: where email goes (never the SMTP password)."""
    if settings.smtp_url is None:
        err_console.print(
            "Email is captured, not sent (HOOKHUB_SMTP_URL is not set): `hookhub emails` lists it."
        )
        return
    from hookhub.email.smtp_url import parse_smtp_url

    try:
        where = parse_smtp_url(settings.smtp_url.get_secret_value()).describe()
    except HookhubError as exc:
        err_console.print(f"[red]HOOKHUB_SMTP_URL:[/red] {exc.message}")
        raise typer.Exit(2) from exc
    except ValueError as exc:
        err_console.print(f"[red]HOOKHUB_SMTP_URL:[/red] {exc}")
        raise typer.Exit(2) from exc
    err_console.print(f"Email goes to {where}.")


@email_app.command("send")
def email_send(
    to: Annotated[list[str], typer.Option("--to", help="A recipient (repeat for more).")],
    template: Annotated[int | None, typer.Option("--template", help="A template id.")] = None,
    subject: Annotated[str | None, typer.Option("--subject")] = None,
    html: Annotated[str | None, typer.Option("--html")] = None,
    text: Annotated[str | None, typer.Option("--text")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="key=value, read as {{ params.key }}.")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Queue an email (by template, or --subject and --html) to one or more recipients."""
    from hookhub.email.service import EmailService, SendRequest

    params: dict[str, object] = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            err_console.print(f"[red]--param {item!r}:[/red] write it as key=value")
            raise typer.Exit(2)
        params[key] = value
    settings = _settings(database_url=database_url)
    services = _services(settings)
    try:
        request = SendRequest(
            to=[(address, None) for address in to],
            template_id=template,
            subject=subject,
            html=html,
            text=text,
            params=params,
        )
        sent = EmailService(services.db, services.outbox, settings).send(request)
    except HookhubError as exc:
        err_console.print(f"[red]Not sent:[/red] {exc.message}")
        raise typer.Exit(1) from exc
    finally:
        services.close()
    for answer in sent.data:
        reason = f" ({answer['status_reason']})" if answer.get("status_reason") else ""
        console.print(f"email {answer['id']} to {answer['to']}: {answer['status']}{reason}")


@emails_app.callback()
def emails_list(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option("--status", help="One of: " + ", ".join(STATUSES))
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 20,
    database_url: DatabaseUrl = None,
) -> None:
    """The newest emails first."""
    if ctx.invoked_subcommand is not None:
        return
    from hookhub.email.service import EmailService

    if status is not None and status not in STATUSES:
        err_console.print(f"[red]--status[/red] must be one of: {', '.join(STATUSES)}")
        raise typer.Exit(2)
    settings = _settings(database_url=database_url)
    services = _services(settings)
    try:
        items = EmailService(services.db, services.outbox, settings).page(
            before_id=None, limit=limit, status=status
        )
    finally:
        services.close()
    table = Table("id", "to", "subject", "status", "created")
    for email in items:
        status_text = email.status + (f": {email.status_reason}" if email.status_reason else "")
        table.add_row(
            str(email.id),
            email.to_email,
            email.subject or "",
            status_text,
            email.created_at.isoformat(timespec="seconds"),
        )
    console.print(table)


@emails_app.command("show")
def emails_show(
    email_id: Annotated[int, typer.Argument(min=1)],
    raw: Annotated[bool, typer.Option("--raw", help="Print the message's exact bytes.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """One email with its timeline (or, with --raw, the message as sent)."""
    from hookhub.email.service import EmailService

    settings = _settings(database_url=database_url)
    services = _services(settings)
    try:
        service = EmailService(services.db, services.outbox, settings)
        if raw:
            sys.stdout.buffer.write(service.raw(email_id))
            sys.stdout.flush()
            return
        email = service.get(email_id)
    except HookhubError as exc:
        err_console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    finally:
        services.close()
    console.print(f"email {email.id} <{email.message_id}> to {email.to_email}")
    console.print(f"subject: {email.subject or '(not rendered yet)'}")
    console.print(
        f"status: {email.status}" + (f" ({email.status_reason})" if email.status_reason else "")
    )
    for event in email.events:
        console.print(f"  {event.to_api()['at']}  {event.type}  {event.detail or ''}")
