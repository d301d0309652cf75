"""What every ``hookhub`` command shares: its consoles, its options and how it opens the services.

Kept apart from ``cli.py`` so that each group of commands (``cli_keys``, ``cli_secrets``) imports
it without importing the whole command line.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from hookhub.config import Settings, load_settings
from hookhub.services import Services, build_services
from hookhub.store.migrate import migrate

console = Console()
err_console = Console(stderr=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="HOOKHUB_DATABASE_URL",
        show_envvar=True,
        help="sqlite:///path or postgresql://user@host/db [default: sqlite:///./hookhub.db]",
    ),
]
Host = Annotated[
    str | None,
    typer.Option(
        "--host",
        envvar="HOOKHUB_HOST",
        show_envvar=True,
        help="Address to bind [default: 127.0.0.1]",
    ),
]
Port = Annotated[
    int | None,
    typer.Option(
        "--port", envvar="HOOKHUB_PORT", show_envvar=True, help="Port to bind [default: 8080]"
    ),
]
LogLevel = Annotated[
    str | None,
    typer.Option(
        "--log-level",
        envvar="HOOKHUB_LOG_LEVEL",
        show_envvar=True,
        help="DEBUG, INFO, WARNING or ERROR [default: INFO]",
    ),
]


def settings_from(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except Exception as exc:  # pydantic's ValidationError, with every bad variable named
        err_console.print(f"[red]Invalid configuration:[/red] {exc}")
        raise typer.Exit(2) from exc


def open_services(settings: Settings, *, migrate_first: bool = True) -> Services:
    from hookhub.errors import SecretKeyError
    from hookhub.store.secrets import check_readable

    try:
        services = build_services(settings)
    except SecretKeyError as exc:
        err_console.print(f"[red]Secret key:[/red] {exc.message}")
        raise typer.Exit(2) from exc
    try:
        if migrate_first:
            migrate(services.db)
        assert services.db.secrets is not None
        with services.db.read() as conn:
            check_readable(conn, services.db.secrets.keyring)
    except SecretKeyError as exc:
        services.close()
        err_console.print(f"[red]Secret key:[/red] {exc.message}")
        raise typer.Exit(2) from exc
    return services
