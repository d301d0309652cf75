"""``hookhub keys``: create, list and revoke API keys (only their hashes are stored)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from hookhub.cli_common import DatabaseUrl, console, err_console
from hookhub.cli_common import open_services as _services
from hookhub.cli_common import settings_from as _settings
from hookhub.keys import Scope

keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="What the key is for.")] = "cli",
    scope: Annotated[
        Scope,
        typer.Option(
            "--scope",
            help="admin: everything; write: read and change, but no secrets and no keys;"
            " read: GET only, never secrets.",
        ),
    ] = Scope.WRITE,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    services = _services(_settings(database_url=database_url))
    info, key = services.keys.create(name, scope=scope)
    services.close()
    err_console.print(f"Created {scope.value} key {info.id} ({name}); it is shown once:")
    print(key)


@keys_app.command("list")
def keys_list(database_url: DatabaseUrl = None) -> None:
    """List API keys (their prefixes, never the keys)."""
    services = _services(_settings(database_url=database_url))
    table = Table("id", "name", "scope", "prefix", "created", "revoked")
    for info in services.keys.list():
        table.add_row(
            str(info.id),
            info.name,
            info.scope.value,
            info.prefix + "…",
            info.created_at.isoformat(),
            info.revoked_at.isoformat() if info.revoked_at else "",
        )
    services.close()
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="The id shown by `hookhub keys list`.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke an API key; requests using it fail within seconds."""
    from hookhub.errors import NotFound

    services = _services(_settings(database_url=database_url))
    try:
        services.keys.revoke(key_id)
    except NotFound as exc:
        err_console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    finally:
        services.close()
    console.print(f"Revoked key {key_id}.")
