"""``hookhub secrets``: make a key, see what sealed the stored secrets, re-seal them all.

Rotation, step by step (README, "Secrets at rest"): start every process with the new key as
``HOOKHUB_SECRET_KEY`` and the old one in ``HOOKHUB_SECRET_KEY_PREVIOUS``, run ``rotate-key``,
then drop the old key. Only ``generate-key`` ever prints a key.
"""

from __future__ import annotations

import typer
from rich.table import Table

from hookhub.cli_common import DatabaseUrl, console
from hookhub.cli_common import open_services as _services
from hookhub.cli_common import settings_from as _settings

secrets_app = typer.Typer(
    help="Manage the key that encrypts secrets at rest.", no_args_is_help=True
)
_KEYS_HELP = (
    " The key is read from HOOKHUB_SECRET_KEY, older ones from HOOKHUB_SECRET_KEY_PREVIOUS"
    " (SQLite without either: the <database>.key file)."
)


@secrets_app.command("generate-key")
def generate_key() -> None:
    """Print a new random key for HOOKHUB_SECRET_KEY (nothing is stored)."""
    from hookhub.core.crypto import new_key

    print(new_key())


@secrets_app.command("status")
def status(database_url: DatabaseUrl = None) -> None:
    """Show the configured keys and how many stored secrets each one encrypted."""
    from hookhub.store.secrets import census

    services = _services(_settings(database_url=database_url))
    try:
        assert services.db.secrets is not None
        keyring = services.db.secrets.keyring
        with services.db.read() as conn:
            counts = census(conn)
    finally:
        services.close()
    table = Table("key id", "role", "secrets")
    for key_id in keyring.ids:
        role = "current" if key_id == keyring.current.id else "previous"
        table.add_row(key_id, role, str(counts.get(key_id, 0)))
    if counts.get("plaintext"):
        table.add_row("(none)", "not encrypted", str(counts["plaintext"]))
    console.print(table)


status.__doc__ = (status.__doc__ or "") + _KEYS_HELP


@secrets_app.command("rotate-key")
def rotate_key(database_url: DatabaseUrl = None) -> None:
    """Re-encrypt every stored secret with HOOKHUB_SECRET_KEY, in one transaction."""
    from hookhub.store.secrets import reseal_all

    services = _services(_settings(database_url=database_url))
    try:
        assert services.db.secrets is not None
        keyring = services.db.secrets.keyring
        with services.db.write() as conn:
            rewritten = reseal_all(conn, keyring)
    finally:
        services.close()
    console.print(
        f"Re-encrypted {rewritten} secret(s) with key {keyring.current.id}; every stored secret"
        " now opens with HOOKHUB_SECRET_KEY alone."
    )


rotate_key.__doc__ = (rotate_key.__doc__ or "") + _KEYS_HELP
