"""Secrets at rest: the column type that seals on write and opens on read, and key rotation.

Columns declared :class:`SealedText` hold ``enc:v1:...`` values (see ``hookhub.core.crypto``);
code above the store reads and writes plaintext and never sees the difference. The keyring
belongs to the engine (:func:`attach`), so two databases in one process keep their own keys.
Opened values are cached by their ciphertext (a ciphertext always opens to the same plaintext),
so the delivery and receive paths decrypt each secret once per process.

A value that is not sealed (written before secrets were encrypted) is read as it is; the
migration that introduced sealing seals every such value, and ``hookhub secrets rotate-key``
seals any that remain. This module must never log a secret or put one in an error message.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect, String, Text, bindparam, column, select, table, update
from sqlalchemy.engine import Engine
from sqlalchemy.types import TypeDecorator, TypeEngine

from hookhub.core.crypto import CryptoError, Keyring, is_sealed, key_id_of
from hookhub.errors import SecretKeyError

_BOX = "_hookhub_secret_box"
CACHE_SIZE = 10_000


class SecretBox:
    """A keyring and the cache of what it opened; thread-safe."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._opened: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def seal(self, plaintext: str, purpose: str) -> str:
        return self.keyring.seal(plaintext, purpose)

    def open(self, value: str, purpose: str) -> str:
        key = (value, purpose)
        opened = self._opened.get(key)
        if opened is not None:
            return opened
        try:
            opened = self.keyring.open(value, purpose)
        except CryptoError as exc:
            raise SecretKeyError(f"A stored secret cannot be decrypted: {exc}.") from exc
        with self._lock:
            if len(self._opened) >= CACHE_SIZE:
                self._opened.clear()
            self._opened[key] = opened
        return opened


def attach(engine: Engine, box: SecretBox | None) -> None:
    """Make ``box`` seal and open the :class:`SealedText` columns used through ``engine``."""
    setattr(engine.dialect, _BOX, box)


def box_of(dialect: Dialect) -> SecretBox | None:
    box: SecretBox | None = getattr(dialect, _BOX, None)
    return box


def _require_box(dialect: Dialect) -> SecretBox:
    box = box_of(dialect)
    if box is None:
        raise SecretKeyError("No secret key is configured for this database (HOOKHUB_SECRET_KEY).")
    return box


class SealedText(TypeDecorator[str]):
    """Text sealed with the engine's keyring; ``purpose`` is bound to each value."""

    impl = Text
    cache_ok = True

    def __init__(self, purpose: str, *, sqlite_length: int | None = None) -> None:
        super().__init__()
        self.purpose = purpose
        self.sqlite_length = sqlite_length

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        # SQLite ignores declared lengths, and changing one there means rebuilding the table:
        # a column created as VARCHAR(n) stays so, and holds sealed values of any length.
        if self.sqlite_length is not None and dialect.name == "sqlite":
            return String(self.sqlite_length)
        return Text()

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return _require_box(dialect).seal(value, self.purpose)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        text = str(value)
        if not is_sealed(text):
            return text  # written before sealing; rotate-key seals it
        return _require_box(dialect).open(text, self.purpose)


@dataclass(frozen=True)
class SealedColumn:
    table: str
    column: str
    key: str = "id"

    @property
    def purpose(self) -> str:
        return f"{self.table}.{self.column}"


SEALED_COLUMNS = (
    SealedColumn("endpoints", "secret"),
    SealedColumn("endpoints", "auth"),
    SealedColumn("endpoints", "previous_secrets"),
    SealedColumn("inbound_webhooks", "secret"),
)


def _raw_values(conn: Connection, sealed: SealedColumn) -> Iterator[tuple[Any, str]]:
    """(row id, stored text) of every non-null value of a sealed column, bypassing the type."""
    raw = table(sealed.table, column(sealed.key), column(sealed.column))
    query = select(raw.c[sealed.key], raw.c[sealed.column]).where(raw.c[sealed.column].is_not(None))
    for row_id, value in conn.execute(query):
        yield row_id, str(value)


def census(conn: Connection) -> Counter[str]:
    """How many stored secrets each key id sealed (``"plaintext"`` for unsealed ones)."""
    counts: Counter[str] = Counter()
    for sealed in SEALED_COLUMNS:
        for _row_id, value in _raw_values(conn, sealed):
            counts[key_id_of(value) or "plaintext"] += 1
    return counts


def reseal_all(conn: Connection, keyring: Keyring) -> int:
    """Seal every stored secret with the keyring's current key, inside the caller's transaction.

    Values sealed with another key are opened first (that key must be in the keyring); values
    already under the current key are left alone. Answers how many values were rewritten.
    """
    rewritten = 0
    for sealed in SEALED_COLUMNS:
        raw = table(sealed.table, column(sealed.key), column(sealed.column))
        statement = (
            update(raw)
            .where(raw.c[sealed.key] == bindparam("b_key"))
            .values({sealed.column: bindparam("b_value")})
        )
        changes = []
        for row_id, value in list(_raw_values(conn, sealed)):
            if key_id_of(value) == keyring.current.id:
                continue
            try:
                plaintext = keyring.open(value, sealed.purpose) if is_sealed(value) else value
            except CryptoError as exc:
                raise SecretKeyError(f"A stored secret cannot be decrypted: {exc}.") from exc
            changes.append({"b_key": row_id, "b_value": keyring.seal(plaintext, sealed.purpose)})
        if changes:
            conn.execute(statement, changes)
            rewritten += len(changes)
    return rewritten


def check_readable(conn: Connection, keyring: Keyring) -> None:
    """Raise :class:`SecretKeyError` unless the keyring holds every key that sealed a secret.

    Run at start, so that a wrong key stops a process at once with what to do, rather than
    failing deliveries and receive calls one by one.
    """
    unknown = sorted(set(census(conn)) - set(keyring.ids) - {"plaintext"})
    if unknown:
        raise SecretKeyError(
            f"Stored secrets were encrypted with key {', '.join(unknown)}, which is neither"
            f" HOOKHUB_SECRET_KEY nor in HOOKHUB_SECRET_KEY_PREVIOUS (configured:"
            f" {', '.join(keyring.ids)}). Start with the key they were encrypted with."
        )
