"""Where the key that seals secrets at rest comes from.

``HOOKHUB_SECRET_KEY`` (32 bytes, base64) seals; ``HOOKHUB_SECRET_KEY_PREVIOUS`` (a comma list)
only opens, during a rotation. A SQLite deployment without ``HOOKHUB_SECRET_KEY`` gets a key
generated on first start and kept beside the database (``<database>.key``, mode 0600); once
``HOOKHUB_SECRET_KEY`` is set, that file's key still opens what it sealed. PostgreSQL
deployments run many processes on many machines, which must share the key: there it is
required, and nothing starts without it.

Never log a key, and never print one except in ``hookhub secrets generate-key``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from hookhub.config import Settings
from hookhub.core.crypto import CryptoError, Keyring, new_key, parse_key
from hookhub.errors import SecretKeyError
from hookhub.store.database import sqlite_path


def key_file_path(database_url: str) -> Path | None:
    """``<database>.key`` for a SQLite URL; None for PostgreSQL."""
    database = sqlite_path(database_url)
    return None if database is None else Path(database + ".key")


def _parse(text: str, name: str) -> bytes:
    try:
        return parse_key(text)
    except CryptoError as exc:
        raise SecretKeyError(
            f"{name} is not a valid key ({exc}); make one with `hookhub secrets generate-key`."
        ) from exc


def _read_or_create(path: Path) -> str:
    """The key in ``path``, created (0600, exclusively: two first starts agree) if missing."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    key = new_key()
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return key


def load_keyring(settings: Settings) -> Keyring:
    """The keyring for ``settings``; raises :class:`SecretKeyError` with what to do if none."""
    previous: list[bytes] = []
    if settings.secret_key_previous is not None:
        for part in settings.secret_key_previous.get_secret_value().split(","):
            if part.strip():
                previous.append(_parse(part, "HOOKHUB_SECRET_KEY_PREVIOUS"))
    key_file = key_file_path(settings.database_url)
    if settings.secret_key is not None:
        current = _parse(settings.secret_key.get_secret_value(), "HOOKHUB_SECRET_KEY")
        if key_file is not None and key_file.exists():
            previous.append(_parse(key_file.read_text(), str(key_file)))
        return Keyring(current, previous)
    if key_file is None:
        raise SecretKeyError(
            "HOOKHUB_SECRET_KEY is required with PostgreSQL: every process must seal and open"
            " secrets with the same key. Make one with `hookhub secrets generate-key`."
        )
    try:
        text = _read_or_create(key_file)
    except OSError as exc:
        raise SecretKeyError(
            f"Cannot read or create the secret key file {key_file}: {exc.strerror}."
        ) from exc
    return Keyring(_parse(text, str(key_file)), previous)
