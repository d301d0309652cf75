"""``hookhub users``: the people who sign in to the dashboard (create, list, disable).

Passwords are read from a prompt (asked twice, never echoed) or, with ``--password-stdin``,
from the first line of standard input; they are never taken as an argument (it would sit in the
shell's history and the process list) and never printed or logged.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from hookhub.cli_common import DatabaseUrl, console, err_console
from hookhub.cli_common import open_services as _services
from hookhub.cli_common import settings_from as _settings
from hookhub.errors import HookhubError
from hookhub.users import DashboardUsers, Role

users_app = typer.Typer(help="Manage dashboard users.", no_args_is_help=True)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    first: str = typer.prompt("Password", hide_input=True)
    again: str = typer.prompt("Password (again)", hide_input=True)
    if first != again:
        err_console.print("[red]The passwords differ.[/red]")
        raise typer.Exit(1)
    return first


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Argument(help="The user's email (what they sign in with).")],
    role: Annotated[
        Role,
        typer.Option("--role", help="admin: sees and changes everything; viewer: only sees."),
    ] = Role.VIEWER,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help="Read the password from standard input instead of a prompt."
        ),
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a dashboard user (the password is stored as an Argon2 hash)."""
    password = _read_password(password_stdin)
    services = _services(_settings(database_url=database_url))
    try:
        user = DashboardUsers(services.db).create(email, password, role)
    except HookhubError as exc:
        err_console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    finally:
        services.close()
    console.print(f"Created {user.role.value} user {user.email} (id {user.id}).")


@users_app.command("list")
def users_list(database_url: DatabaseUrl = None) -> None:
    """List dashboard users."""
    services = _services(_settings(database_url=database_url))
    try:
        users = DashboardUsers(services.db).list()
    finally:
        services.close()
    table = Table("id", "email", "role", "created", "disabled")
    for user in users:
        table.add_row(
            str(user.id),
            user.email,
            user.role.value,
            user.created_at.isoformat() if user.created_at else "",
            "yes" if user.disabled else "",
        )
    console.print(table)


@users_app.command("disable")
def users_disable(
    email: Annotated[str, typer.Argument(help="The user's email.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Disable a user: they cannot sign in, and their sessions end at once."""
    services = _services(_settings(database_url=database_url))
    try:
        users = DashboardUsers(services.db)
        user = users.find_by_email(email)
        if user is None:
            err_console.print(f"[red]No user with email {email.strip().lower()}.[/red]")
            raise typer.Exit(1)
        users.set_disabled(user.id, True)
    except HookhubError as exc:
        err_console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    finally:
        services.close()
    console.print(f"Disabled {user.email}.")
