"""The sources of a contact's timeline on the dashboard: its custom events, its emails' events,
its automation enrollments and steps, the inbound requests whose rules touched it and the
outbound messages about it (with their deliveries).

Each source answers entries older than a time, newest first, and how far down it looked. The
per-contact sources read indexes by contact. Messages and inbound requests have no contact
column (their JSON names the contact): they scan at most ``SCAN_WINDOW`` rows per page, newest
first by primary key, and say where they stopped so that the next page goes on from there.
This module must never write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from hookhub import ids
from hookhub.core import jsoncodec
from hookhub.store.schema import (
    custom_events,
    deliveries,
    inbound_requests,
    inbound_webhooks,
    messages,
)
from hookhub.store.schema_automation import automation_enrollments as enrollments
from hookhub.store.schema_automation import automation_step_log as step_log
from hookhub.store.schema_automation import automations
from hookhub.store.schema_email import email_events, emails

SCAN_WINDOW = 1000
"""Rows a source without a contact column looks at per page, at most."""

EMAIL_TIMELINE_TYPES = (
    "sent",
    "deferred",
    "delivered",
    "bounced",
    "failed",
    "skipped",
    "opened",
    "clicked",
    "complained",
    "unsubscribed",
)


def _mentions(conn: Connection, column: Any, contact_id: int) -> Any:
    """A prefilter: ``column`` (JSON text written compactly) holds ``"contact_id":<id>``, maybe
    as the start of a longer number (:func:`_names` decides on the rows found).

    One pattern per row: on SQLite a GLOB with a character class, exact (half the time of three
    LIKEs); on PostgreSQL one LIKE (three cost three passes over each row's text)."""
    key = f'"contact_id":{int(contact_id)}'
    if conn.dialect.name == "sqlite":
        return column.op("GLOB")(f"*{key}[],}}]*")
    return column.like(f"%{key}%")


def _names(text: str | bytes | None, contact_id: int) -> bool:
    """``text`` holds ``"contact_id":<id>`` as a whole value (not 12 inside 123)."""
    if text is None:
        return False
    body = text.decode(errors="replace") if isinstance(text, bytes) else text
    return re.search(rf'"contact_id":{int(contact_id)}[,}}\]]', body) is not None


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


RANKS = {
    "event": 0,
    "email": 1,
    "entered": 2,
    "step": 3,
    "exited": 4,
    "inbound": 5,
    "outbound": 6,
}
"""Entries of one instant are ordered by source, then by their row's key (newest first)."""

Key = tuple[float, int, Any]
"""(time, rank, row key): the timeline's order, newest first; a cursor names the last shown."""


@dataclass(slots=True)
class TimelineEntry:
    at: float
    source: str  # event, email, automation, inbound, outbound
    kind: str
    ref: int | str
    """The row's key in its source (what ties at one instant are ordered by)."""
    rank: int
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> Key:
        return (self.at, self.rank, self.ref)


@dataclass(frozen=True, slots=True)
class Before:
    """Entries older than this key (``rank`` None: older than ``at``, the first page)."""

    at: float
    rank: int | None = None
    ref: Any = None

    def clause(self, at: Any, ref: Any, rank: int, *, moment: bool = False) -> Any:
        """``(at, rank, ref) < self`` in SQL; ``moment``: ``at`` is a datetime column."""
        bound: Any = _dt(self.at) if moment else self.at
        if self.rank is None or rank > self.rank:
            return at < bound
        if rank < self.rank:
            return at <= bound
        return or_(at < bound, and_(at == bound, ref < self.ref))


@dataclass(slots=True)
class SourcePage:
    """Entries older than the cursor, newest first. ``floor``: entries older than this key were
    not looked at (None: the source has nothing older). ``resume``: where a scanned source goes
    on (the lowest row key it looked at)."""

    entries: list[TimelineEntry]
    floor: Key | None
    resume: int | str | None = None


def _limited(entries: list[TimelineEntry], limit: int) -> SourcePage:
    entries.sort(key=lambda e: e.key, reverse=True)
    if len(entries) >= limit:
        return SourcePage(entries[:limit], entries[limit - 1].key)
    return SourcePage(entries, None)


def custom_event_entries(
    conn: Connection, contact_id: int, *, before: Before, limit: int
) -> SourcePage:
    col = custom_events.c
    query = (
        select(custom_events)
        .where(
            col.contact_id == contact_id,
            before.clause(col.event_date, col.id, RANKS["event"], moment=True),
        )
        .order_by(col.event_date.desc(), col.id.desc())
        .limit(limit)
    )
    entries = [
        TimelineEntry(
            row.event_date.timestamp(),
            "event",
            row.event_name,
            row.id,
            RANKS["event"],
            {"properties": jsoncodec.loads(row.event_properties)},
        )
        for row in conn.execute(query)
    ]
    return _limited(entries, limit)


def email_entries(conn: Connection, contact_id: int, *, before: Before, limit: int) -> SourcePage:
    event = email_events.c
    query = (
        select(
            event.id,
            event.type,
            event.at,
            event.detail,
            emails.c.id.label("email_id"),
            emails.c.subject,
            emails.c.kind,
            emails.c.campaign_id,
            emails.c.automation_id,
        )
        .join(emails, emails.c.id == event.email_id)
        .where(
            emails.c.contact_id == contact_id,
            before.clause(event.at, event.id, RANKS["email"]),
            event.type.in_(EMAIL_TIMELINE_TYPES),
        )
        .order_by(event.at.desc(), event.id.desc())
        .limit(limit)
    )
    entries = [
        TimelineEntry(
            float(row.at),
            "email",
            row.type,
            row.id,
            RANKS["email"],
            {
                "email_id": row.email_id,
                "subject": row.subject,
                "email_kind": row.kind,
                "campaign_id": row.campaign_id,
                "automation_id": row.automation_id,
                "detail": jsoncodec.loads(row.detail) if row.detail else None,
            },
        )
        for row in conn.execute(query)
    ]
    return _limited(entries, limit)


def automation_entries(
    conn: Connection, contact_id: int, *, before: Before, limit: int
) -> list[SourcePage]:
    """Three sources: enrollments entered, steps logged, enrollments finished."""
    col = enrollments.c
    base = select(
        col.id,
        col.automation_id,
        automations.c.name,
        col.status,
        col.exit_reason,
        col.entered_at,
        col.finished_at,
    ).outerjoin(automations, automations.c.id == col.automation_id)
    mine = col.contact_id == contact_id
    entered = (
        base.where(mine, before.clause(col.entered_at, col.id, RANKS["entered"]))
        .order_by(col.entered_at.desc(), col.id.desc())
        .limit(limit)
    )
    finished = (
        base.where(
            mine,
            col.finished_at.is_not(None),
            before.clause(col.finished_at, col.id, RANKS["exited"]),
        )
        .order_by(col.finished_at.desc(), col.id.desc())
        .limit(limit)
    )
    went_in = [
        TimelineEntry(
            float(row.entered_at),
            "automation",
            "entered",
            row.id,
            RANKS["entered"],
            {"automation_id": row.automation_id, "automation": row.name},
        )
        for row in conn.execute(entered)
    ]
    went_out = [
        TimelineEntry(
            float(row.finished_at),
            "automation",
            "exited",
            row.id,
            RANKS["exited"],
            {
                "automation_id": row.automation_id,
                "automation": row.name,
                "status": row.status,
                "reason": row.exit_reason,
            },
        )
        for row in conn.execute(finished)
    ]
    log = step_log.c
    steps = (
        select(
            log.id,
            log.enrollment_id,
            log.automation_id,
            log.step_id,
            log.kind,
            log.outcome,
            log.at,
            automations.c.name,
        )
        .join(enrollments, col.id == log.enrollment_id)
        .outerjoin(automations, automations.c.id == log.automation_id)
        .where(mine, before.clause(log.at, log.id, RANKS["step"]))
        .order_by(log.at.desc(), log.id.desc())
        .limit(limit)
    )
    stepped = [
        TimelineEntry(
            float(row.at),
            "automation",
            "step",
            row.id,
            RANKS["step"],
            {
                "automation_id": row.automation_id,
                "automation": row.name,
                "step_id": row.step_id,
                "step_kind": row.kind,
                "outcome": row.outcome,
            },
        )
        for row in conn.execute(steps)
    ]
    return [_limited(went_in, limit), _limited(stepped, limit), _limited(went_out, limit)]


def _window(conn: Connection, key: Any, below: Any, floor_key: Any, window: int) -> Any:
    """(lowest key, count) of the ``window`` newest rows below ``below``."""
    query = select(key).order_by(key.desc()).limit(window)
    if below is not None:
        query = query.where(key < below)
    if floor_key is not None:
        query = query.where(key >= floor_key)
    keys = query.subquery()
    return conn.execute(select(func.min(keys.c.id), func.count())).one()


def inbound_entries(
    conn: Connection,
    contact_id: int,
    *,
    before: Before,
    below_id: int | None,
    window: int = SCAN_WINDOW,
) -> SourcePage:
    """Inbound requests whose rules touched the contact (their ``actions`` name its id), among
    the ``window`` newest requests below ``below_id``."""
    rank = RANKS["inbound"]
    col = inbound_requests.c
    low, scanned = _window(conn, col.id, below_id, None, window)
    if not scanned:
        return SourcePage([], None)
    query = (
        select(
            col.id,
            col.webhook_id,
            col.received_at,
            col.status,
            col.event_type,
            col.actions,
            inbound_webhooks.c.name,
        )
        .outerjoin(inbound_webhooks, inbound_webhooks.c.id == col.webhook_id)
        .where(
            col.id >= low,
            before.clause(col.received_at, col.id, rank),
            _mentions(conn, col.actions, contact_id),
        )
        .order_by(col.id.desc())
    )
    if below_id is not None:
        query = query.where(col.id < below_id)
    entries = [
        TimelineEntry(
            float(row.received_at),
            "inbound",
            row.status,
            row.id,
            rank,
            {"webhook_id": row.webhook_id, "webhook": row.name, "event_type": row.event_type},
        )
        for row in conn.execute(query)
        if _names(row.actions, contact_id)
    ]
    if int(scanned) < window:
        return SourcePage(entries, None, None)
    oldest = conn.execute(select(col.received_at).where(col.id == low)).scalar_one()
    return SourcePage(entries, (float(oldest), rank, int(low)), int(low))


def message_id_floor(epoch: float) -> str:
    """The smallest message id a message created at ``epoch`` can have (ids are time-ordered:
    the millisecond, then random bits, which are all zero here)."""
    return "msg_" + ids._id_body(int(epoch * 1000), 0)


def outbound_entries(
    conn: Connection,
    contact_id: int,
    *,
    before: Before,
    below_id: str | None,
    since: float,
    window: int = SCAN_WINDOW,
) -> SourcePage:
    """Outbound messages about the contact (their data names its id), with their deliveries,
    among the ``window`` newest messages below ``below_id`` created since ``since`` (the
    contact's creation: none can be older)."""
    rank = RANKS["outbound"]
    col = messages.c
    low, scanned = _window(conn, col.id, below_id, message_id_floor(since), window)
    if not scanned:
        return SourcePage([], None)
    query = (
        select(col.id, col.type, col.created_at, col.payload)
        .where(
            col.id >= low,
            before.clause(col.created_at, col.id, rank, moment=True),
            _mentions(conn, col.payload, contact_id),
        )
        .order_by(col.id.desc())
    )
    if below_id is not None:
        query = query.where(col.id < below_id)
    rows = [row for row in conn.execute(query) if _names(row.payload, contact_id)]
    by_message: dict[str, list[dict[str, Any]]] = {}
    if rows:
        found = conn.execute(
            select(
                deliveries.c.id,
                deliveries.c.message_id,
                deliveries.c.endpoint_id,
                deliveries.c.status,
                deliveries.c.attempt_count,
                deliveries.c.last_status_code,
            )
            .where(deliveries.c.message_id.in_([r.id for r in rows]))
            .order_by(deliveries.c.id)
        )
        for d in found:
            by_message.setdefault(d.message_id, []).append(
                {
                    "id": d.id,
                    "endpoint_id": d.endpoint_id,
                    "status": d.status,
                    "attempts": d.attempt_count,
                    "status_code": d.last_status_code,
                }
            )
    entries = [
        TimelineEntry(
            row.created_at.timestamp(),
            "outbound",
            row.type,
            row.id,
            rank,
            {"deliveries": by_message.get(row.id, [])},
        )
        for row in rows
    ]
    if int(scanned) < window:
        return SourcePage(entries, None, None)
    oldest = conn.execute(select(col.created_at).where(col.id == low)).scalar_one()
    return SourcePage(entries, (oldest.timestamp(), rank, str(low)), str(low))
