"""Configuration versions: how a process learns that another one changed what it caches.

Every change to API keys, endpoints or inbound webhooks bumps its kind's row in the same
transaction (:func:`bump`), and on PostgreSQL also sends ``NOTIFY hookhub_config, '<kind>'``,
delivered when that transaction commits. Processes that cache these read the versions cheaply
(:func:`read_versions`, one tiny table) and drop a kind's cache when its version moves.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Connection, select, update

from hookhub.store.notify import notify
from hookhub.store.schema import config_versions

CHANNEL = "hookhub_config"


class ConfigKind(StrEnum):
    API_KEYS = "api_keys"
    ENDPOINTS = "endpoints"
    INBOUND_WEBHOOKS = "inbound_webhooks"


_BUMP = {
    kind: update(config_versions)
    .where(config_versions.c.kind == kind.value)
    .values(version=config_versions.c.version + 1)
    for kind in ConfigKind
}
_READ = select(config_versions.c.kind, config_versions.c.version)


def bump(conn: Connection, kind: ConfigKind) -> None:
    """Mark ``kind`` changed by the caller's write transaction (seen once it commits)."""
    conn.execute(_BUMP[kind])
    notify(conn, CHANNEL, kind.value)


def read_versions(conn: Connection) -> dict[str, int]:
    return {kind: int(version) for kind, version in conn.execute(_READ)}
