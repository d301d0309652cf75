"""Queries on outbound endpoints (``/api/v1/webhooks``).

An automation's ``webhook`` step posts to a hidden endpoint of its own (``automation_id`` and
``automation_step`` set): fan-out never sees it (it subscribes to nothing and is left out of
:meth:`EndpointStore.subscriptions`), and ``/webhooks`` never lists, shows or deletes it
(``listed_only``); the delivery worker sends to it like to any other.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, text, update

from hookhub.core import jsoncodec
from hookhub.core.origin import IgnoreRules, parse_ignore_origins, rules_json
from hookhub.records.outbound import Endpoint
from hookhub.store.config_versions import ConfigKind, bump
from hookhub.store.schema import endpoints


def row_to_endpoint(row: Row[Any]) -> Endpoint:
    return Endpoint(
        id=row.id,
        url=row.url,
        description=row.description,
        event_types=jsoncodec.loads(row.event_types),
        headers=jsoncodec.loads(row.headers),
        auth=jsoncodec.loads(row.auth) if row.auth else None,
        secret=row.secret,
        previous_secrets=_previous(row.previous_secrets),
        batched=bool(row.batched),
        enabled=bool(row.enabled),
        disabled_reason=row.disabled_reason,
        rate_limit=row.rate_limit,
        max_concurrency=row.max_concurrency,
        failing_since=row.failing_since,
        created_at=row.created_at,
        updated_at=row.updated_at,
        filter=row.filter,
        transform=jsoncodec.loads(row.transform) if row.transform else None,
        ignore_origins=_ignore_rules(row.ignore_origins),
        ordering=row.ordering,
        collapse=jsoncodec.loads(row.collapse) if row.collapse else None,
    )


def endpoint_values(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": jsoncodec.dumps(endpoint.event_types).decode(),
        "headers": jsoncodec.dumps(endpoint.headers).decode(),
        "auth": jsoncodec.dumps(endpoint.auth).decode() if endpoint.auth else None,
        "secret": endpoint.secret,
        "previous_secrets": (
            jsoncodec.dumps([list(p) for p in endpoint.previous_secrets]).decode()
            if endpoint.previous_secrets
            else None
        ),
        "batched": endpoint.batched,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "rate_limit": endpoint.rate_limit,
        "max_concurrency": endpoint.max_concurrency,
        "failing_since": endpoint.failing_since,
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
        "filter": endpoint.filter,
        "transform": jsoncodec.dumps(endpoint.transform).decode() if endpoint.transform else None,
        "ignore_origins": (
            jsoncodec.dumps(rules_json(endpoint.ignore_origins)).decode()
            if endpoint.ignore_origins
            else None
        ),
        "ordering": endpoint.ordering,
        "collapse": jsoncodec.dumps(endpoint.collapse).decode() if endpoint.collapse else None,
    }


@functools.lru_cache(maxsize=4096)
def _parsed_previous(text: str) -> tuple[tuple[str, float], ...]:
    return tuple((str(secret), float(until)) for secret, until in jsoncodec.loads(text))


def _previous(text: str | None) -> list[tuple[str, float]]:
    """Secrets replaced by rotations, newest first, with when each stops signing."""
    return list(_parsed_previous(text)) if text else []


_ENDPOINT_LOCK = 0x68683133  # advisory lock namespace: automations' webhook endpoints
_LISTED = endpoints.c.automation_id.is_(None)
"""Endpoints of ``/webhooks``: not one an automation's webhook step owns."""

_SUBSCRIPTIONS = select(
    endpoints.c.id,
    endpoints.c.event_types,
    endpoints.c.batched,
    endpoints.c.filter,
    endpoints.c.ignore_origins,
    endpoints.c.ordering,
    endpoints.c.collapse,
).where(endpoints.c.enabled.is_(True), _LISTED)


@functools.lru_cache(maxsize=1024)
def _ignore_rules(text: str | None) -> IgnoreRules:
    """Stored rules (validated at save) as fan-out matches them; () when there are none."""
    if not text:
        return ()
    return parse_ignore_origins(jsoncodec.loads(text))


@functools.lru_cache(maxsize=1024)
def _keying(ordering: str | None, collapse: str | None) -> Keying | None:
    """An endpoint's ordering and collapse as fan-out applies them; None without either."""
    if ordering is None and not collapse:
        return None
    spec = jsoncodec.loads(collapse) if collapse else None
    if spec is None:
        return Keying(ordered=ordering is not None, collapse_types=frozenset(), window=0.0)
    return Keying(
        ordered=ordering is not None,
        collapse_types=frozenset(spec["event_types"]),
        window=spec["window_ms"] / 1000,
    )


@functools.lru_cache(maxsize=4096)
def _parsed_patterns(text: str) -> tuple[str, ...]:
    return tuple(jsoncodec.loads(text))


def _patterns(text: str) -> list[str]:
    """Subscriptions are read on every write: parse each distinct JSON text once."""
    return list(_parsed_patterns(text))


@dataclass(frozen=True, slots=True)
class Keying:
    """An endpoint's per-contact options: order kept, and which types' bursts collapse."""

    ordered: bool
    collapse_types: frozenset[str]
    window: float
    """Seconds a collapsing burst's first delivery is held for later ones to merge into it."""


Subscription = tuple[int, list[str], bool, str | None, IgnoreRules, Keying | None]
"""(id, event types, batched, filter, ignore_origins, keying) of an enabled endpoint."""


class EndpointStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._pg = conn.dialect.name == "postgresql"

    def insert(self, endpoint: Endpoint) -> int:
        statement = insert(endpoints).values(endpoint_values(endpoint)).returning(endpoints.c.id)
        endpoint_id = int(self.conn.execute(statement).scalar_one())
        bump(self.conn, ConfigKind.ENDPOINTS)
        return endpoint_id

    def get(
        self, endpoint_id: int, *, lock: bool = False, listed_only: bool = False
    ) -> Endpoint | None:
        query = select(endpoints).where(endpoints.c.id == endpoint_id)
        if listed_only:
            query = query.where(_LISTED)
        if lock and self._pg:
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        return row_to_endpoint(row) if row else None

    def get_many(self, ids: Sequence[int]) -> dict[int, Endpoint]:
        if not ids:
            return {}
        query = select(endpoints).where(endpoints.c.id.in_(sorted(set(ids))))
        return {row.id: row_to_endpoint(row) for row in self.conn.execute(query)}

    def save(self, endpoint: Endpoint) -> None:
        values = endpoint_values(endpoint)
        values.pop("created_at")
        self.conn.execute(update(endpoints).where(endpoints.c.id == endpoint.id).values(values))
        bump(self.conn, ConfigKind.ENDPOINTS)

    def delete(self, endpoint_id: int, *, listed_only: bool = False) -> bool:
        statement = delete(endpoints).where(endpoints.c.id == endpoint_id)
        if listed_only:
            statement = statement.where(_LISTED)
        if not self.conn.execute(statement).rowcount:
            return False
        bump(self.conn, ConfigKind.ENDPOINTS)
        return True

    def page(self, *, after_id: int | None, limit: int) -> list[Endpoint]:
        query = select(endpoints).where(_LISTED).order_by(endpoints.c.id).limit(limit)
        if after_id is not None:
            query = query.where(endpoints.c.id > after_id)
        return [row_to_endpoint(row) for row in self.conn.execute(query)]

    def subscriptions(self) -> list[Subscription]:
        """What fan-out needs of every enabled endpoint (see :class:`Subscription`)."""
        return [
            (
                row.id,
                _patterns(row.event_types),
                bool(row.batched),
                row.filter,
                _ignore_rules(row.ignore_origins),
                _keying(row.ordering, row.collapse),
            )
            for row in self.conn.execute(_SUBSCRIPTIONS)
        ]

    # -- automations' hidden endpoints -------------------------------------------------------

    def automation_endpoint(self, automation_id: int, step_id: str) -> tuple[int, str] | None:
        """(id, url) of the endpoint a webhook step posts to; None before its first post."""
        query = (
            select(endpoints.c.id, endpoints.c.url)
            .where(
                endpoints.c.automation_id == automation_id,
                endpoints.c.automation_step == step_id,
            )
            .order_by(endpoints.c.id)
            .limit(1)
        )
        row = self.conn.execute(query).first()
        return None if row is None else (int(row.id), str(row.url))

    def lock_automation_endpoints(self, automation_id: int) -> None:
        """Until this transaction ends, be the only one making an automation's webhook
        endpoints (PostgreSQL: a transaction-scoped advisory lock; SQLite's write lock already
        is), so that two workers never give one step two endpoints with two secrets."""
        if self._pg:
            self.conn.execute(
                text("SELECT pg_advisory_xact_lock(:namespace, :key)"),
                {"namespace": _ENDPOINT_LOCK, "key": automation_id % 2**31},
            )

    def insert_for_automation(self, endpoint: Endpoint, automation_id: int, step_id: str) -> int:
        values = {
            **endpoint_values(endpoint),
            "automation_id": automation_id,
            "automation_step": step_id,
        }
        statement = insert(endpoints).values(values).returning(endpoints.c.id)
        endpoint_id = int(self.conn.execute(statement).scalar_one())
        bump(self.conn, ConfigKind.ENDPOINTS)
        return endpoint_id

    def set_url(self, endpoint_id: int, url: str) -> None:
        """Point a webhook step's endpoint at the step's (edited) URL; enabled again, since
        a new address deserves its own chance."""
        self.conn.execute(
            update(endpoints)
            .where(endpoints.c.id == endpoint_id)
            .values(url=url, enabled=True, disabled_reason=None, failing_since=None)
        )
        bump(self.conn, ConfigKind.ENDPOINTS)

    def set_failing(self, endpoint_id: int, since: float | None) -> None:
        """Start (keeping an earlier start) or clear the endpoint's failing streak."""
        column = endpoints.c.failing_since
        if since is None:
            statement = (
                update(endpoints)
                .where(endpoints.c.id == endpoint_id, column.is_not(None))
                .values(failing_since=None)
            )
        else:
            statement = (
                update(endpoints)
                .where(endpoints.c.id == endpoint_id, column.is_(None))
                .values(failing_since=since)
            )
        self.conn.execute(statement)

    def disable(self, endpoint_id: int, reason: str) -> bool:
        """Disable an enabled endpoint; False if it was already disabled."""
        result = self.conn.execute(
            update(endpoints)
            .where(endpoints.c.id == endpoint_id, endpoints.c.enabled.is_(True))
            .values(enabled=False, disabled_reason=reason)
        )
        if not result.rowcount:
            return False
        bump(self.conn, ConfigKind.ENDPOINTS)
        return True
