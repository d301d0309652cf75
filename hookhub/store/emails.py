"""The email queue and log: every query that stores, claims, records or reads emails.

An email is *due* when its status is ``queued`` or ``deferred`` and ``next_attempt_at`` has
passed. Claiming leases it exactly as deliveries are leased (``store/deliveries.py``):
``lease_owner`` names the worker and ``next_attempt_at`` becomes the lease's expiry, so the
email of a worker that died falls due again; only the lease owner's outcome is recorded. On
PostgreSQL claims use ``FOR UPDATE SKIP LOCKED``; on SQLite the claim is one statement in a
``BEGIN IMMEDIATE`` transaction.

Email events (the timeline) are rows of ``email_events``; the JSON columns are text written by
``hookhub.core.jsoncodec``. The queue's SQL lives here and nowhere else.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from hookhub.core import jsoncodec
from hookhub.records.email import Email, EmailEvent
from hookhub.store.database import after_commit
from hookhub.store.notify import notify
from hookhub.store.schema import (
    UTCDateTime,
    campaigns,
    contacts,
    email_events,
    email_idempotency,
    email_templates,
    emails,
)

EMAIL_CHANNEL = "hookhub_email"
"""NOTIFY channel: a transaction queued email (PostgreSQL); email workers LISTEN on it."""

_IN_CHUNK = 500
_QUEUE_LISTENERS: weakref.WeakKeyDictionary[Engine, list[Callable[[], None]]] = (
    weakref.WeakKeyDictionary()
)


def on_queued(engine: Engine, wake: Callable[[], None]) -> Callable[[], None]:
    """Call ``wake()`` after every commit on ``engine`` that queued email; answers the function
    that stops it. ``wake`` runs in the committing thread: it must be quick and thread-safe."""
    listeners = _QUEUE_LISTENERS.setdefault(engine, [])
    listeners.append(wake)

    def forget() -> None:
        with contextlib.suppress(ValueError):
            listeners.remove(wake)

    return forget


def _wake_all(listeners: list[Callable[[], None]]) -> None:
    for wake in list(listeners):
        wake()


_DUE = text("emails.status IN ('queued', 'deferred')")  # literal: the partial index's condition
_SUMMARY_COLUMNS = [c for c in emails.c if c.name not in ("raw",)]


def _loads(value: str | None, default: Any) -> Any:
    return jsoncodec.loads(value) if value else default


def row_to_email(row: Row[Any]) -> Email:
    return Email(
        id=row.id,
        message_id=row.message_id,
        kind=row.kind,
        contact_id=row.contact_id,
        to_email=row.to_email,
        to_name=row.to_name,
        sender=_loads(row.sender, {}),
        reply_to=row.reply_to,
        subject=row.subject,
        template_id=row.template_id,
        campaign_id=row.campaign_id,
        automation_id=row.automation_id,
        tags=_loads(row.tags, []),
        params=_loads(row.params, {}),
        content=_loads(row.content, None),
        headers=_loads(row.headers, {}),
        track_opens=bool(row.track_opens),
        track_clicks=bool(row.track_clicks),
        status=row.status,
        status_reason=row.status_reason,
        attempt_count=row.attempt_count,
        next_attempt_at=row.next_attempt_at,
        opened_at=row.opened_at,
        clicked_at=row.clicked_at,
        created_at=row.created_at,
        sent_at=row.sent_at,
        links=_loads(row.links, None),
    )


@dataclass(slots=True)
class NewEmail:
    """An email to queue: whoever causes it (API, rule, campaign, automation) fills one in."""

    message_id: str
    kind: str  # transactional, campaign, automation, test
    to_email: str
    sender: dict[str, Any]
    created_at: datetime
    to_name: str | None = None
    contact_id: int | None = None
    reply_to: str | None = None
    template_id: int | None = None
    campaign_id: int | None = None
    automation_id: int | None = None
    tags: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    content: dict[str, Any] | None = None
    """``{subject, html, text?}`` given inline (no template)."""
    headers: dict[str, str] = field(default_factory=dict)
    track_opens: bool = True
    track_clicks: bool = True
    due_at: float | None = None
    """When to send (epoch seconds); None: at once."""
    status: str = "queued"
    status_reason: str | None = None

    def to_row(self) -> dict[str, Any]:
        def text(value: Any) -> str:
            return jsoncodec.dumps(value).decode()

        return {
            "message_id": self.message_id,
            "kind": self.kind,
            "contact_id": self.contact_id,
            "to_email": self.to_email,
            "to_name": self.to_name,
            "sender": text(self.sender),
            "reply_to": self.reply_to,
            "subject": self.content.get("subject") if self.content else None,
            "template_id": self.template_id,
            "campaign_id": self.campaign_id,
            "automation_id": self.automation_id,
            "tags": text(self.tags),
            "params": text(self.params),
            "content": text(self.content) if self.content is not None else None,
            "headers": text(self.headers),
            "track_opens": self.track_opens,
            "track_clicks": self.track_clicks,
            "status": self.status,
            "status_reason": self.status_reason,
            "attempt_count": 0,
            "next_attempt_at": (self.due_at or self.created_at.timestamp())
            if self.status == "queued"
            else None,
            "created_at": self.created_at,
            "updated_at": self.created_at.timestamp(),
        }


@dataclass(frozen=True, slots=True)
class ClaimedEmail:
    email: Email
    raw: bytes | None
    """The bytes of an earlier attempt (the same bytes are sent again), or None: render."""


@dataclass(frozen=True, slots=True)
class EmailUpdate:
    """What one attempt (or a render failure, or a skip) decided for its email."""

    id: int
    status: str
    status_reason: str | None
    attempt_count: int
    next_attempt_at: float | None
    subject: str | None = None
    raw: bytes | None = None
    links: list[str] | None = None
    sent: bool = False
    """Stamp ``sent_at`` with the update's time (the first 250 only)."""


class EmailStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._pg = conn.dialect.name == "postgresql"

    # -- writing ------------------------------------------------------------------------------

    def insert_many(self, new: Sequence[NewEmail]) -> list[int]:
        """Queue emails (or store them skipped); their ids, in order."""
        if not new:
            return []
        statement = insert(emails).returning(emails.c.id, sort_by_parameter_order=True)
        rows = [email.to_row() for email in new]
        ids = list(self.conn.execute(statement, rows).scalars())
        if any(email.status == "queued" for email in new):
            self.queued()
        return ids

    def insert_campaign_batch(self, new: Sequence[NewEmail]) -> int:
        """Insert a campaign's recipients, skipping contacts it already has (a batch taken
        again after a crash); how many were new."""
        if not new:
            return 0
        rows = [email.to_row() for email in new]
        module = postgresql if self._pg else sqlite
        statement = (
            module.insert(emails)
            .on_conflict_do_nothing(index_elements=["campaign_id", "contact_id"])
            .returning(emails.c.id)
        )
        count = len(self.conn.execute(statement, rows).all())
        if count:
            self.queued()
        return count

    def queued(self) -> None:
        """Wake email workers once this transaction commits: those of this process (see
        :func:`on_queued`) and, on PostgreSQL, every other process's (NOTIFY)."""
        notify(self.conn, EMAIL_CHANNEL)
        listeners = _QUEUE_LISTENERS.get(self.conn.engine)
        if listeners:
            with contextlib.suppress(RuntimeError):  # outside Database.write(): none to wake
                after_commit(self.conn, lambda: _wake_all(listeners))

    def add_events(self, rows: Iterable[tuple[int, str, float, dict[str, Any] | None]]) -> None:
        """Append to emails' timelines: (email id, type, at, detail)."""
        values = [
            {
                "email_id": email_id,
                "type": kind,
                "at": at,
                "detail": jsoncodec.dumps(detail).decode() if detail is not None else None,
            }
            for email_id, kind, at, detail in rows
        ]
        if values:
            self.conn.execute(insert(email_events), values)

    def update_status(self, email_id: int, status: str, reason: str | None, now: float) -> None:
        self.conn.execute(
            update(emails)
            .where(emails.c.id == email_id)
            .values(status=status, status_reason=reason, lease_owner=None, updated_at=now)
        )

    def mark_first(self, email_id: int, column: str, at: float) -> bool:
        """Set ``opened_at`` or ``clicked_at`` unless set; whether this was the first."""
        target = emails.c[column]
        result = self.conn.execute(
            update(emails).where(emails.c.id == email_id, target.is_(None)).values({target: at})
        )
        return bool(result.rowcount)

    # -- the queue ----------------------------------------------------------------------------

    def claim_due(
        self, owner: str, now: float, lease_until: float, limit: int
    ) -> list[ClaimedEmail]:
        """Lease up to ``limit`` due emails, oldest due first."""
        due = (
            select(emails.c.id)
            .where(_DUE, emails.c.next_attempt_at <= now)
            .order_by(emails.c.next_attempt_at)
            .limit(limit)
        )
        if self._pg:
            due = due.with_for_update(skip_locked=True)
        ids = list(self.conn.execute(due).scalars())
        if not ids:
            return []
        self.conn.execute(
            update(emails)
            .where(emails.c.id.in_(ids))
            .values(lease_owner=owner, next_attempt_at=lease_until)
        )
        rows = self.conn.execute(select(emails).where(emails.c.id.in_(ids)))
        claimed = [ClaimedEmail(row_to_email(row), row.raw) for row in rows]
        claimed.sort(key=lambda c: c.email.id)
        return claimed

    def record(self, owner: str, updates: Sequence[EmailUpdate], now: float) -> set[int]:
        """Apply outcomes of emails ``owner`` still leases; the ids applied (an email whose
        lease expired and went to another worker is left to that worker)."""
        if not updates:
            return set()
        ids = [u.id for u in updates]
        held: set[int] = set()
        for chunk in _chunks(ids):
            query = select(emails.c.id).where(emails.c.id.in_(chunk), emails.c.lease_owner == owner)
            held.update(self.conn.execute(query).scalars())
        when = datetime.fromtimestamp(now, UTC)
        rows = []
        for u in updates:
            if u.id not in held:
                continue
            rows.append(
                {
                    "b_id": u.id,
                    "b_status": u.status,
                    "b_reason": u.status_reason,
                    "b_attempts": u.attempt_count,
                    "b_next": u.next_attempt_at,
                    "b_subject": u.subject,
                    "b_raw": u.raw,
                    "b_links": jsoncodec.dumps(u.links).decode() if u.links is not None else None,
                    "b_sent_at": when if u.sent else None,
                    "b_now": now,
                }
            )
        if rows:
            self.conn.execute(_RECORD, rows)
        return held

    def release(self, owner: str) -> int:
        """Give back every email ``owner`` leases (a worker stopping): due again at once."""
        result = self.conn.execute(
            update(emails)
            .where(emails.c.lease_owner == owner, _DUE)
            .values(lease_owner=None, next_attempt_at=0.0)
        )
        return result.rowcount

    # -- reading ------------------------------------------------------------------------------

    def get(self, email_id: int, *, with_events: bool = True) -> Email | None:
        row = self.conn.execute(select(*_SUMMARY_COLUMNS).where(emails.c.id == email_id)).first()
        if row is None:
            return None
        email = row_to_email(row)
        if with_events:
            email.events = self.events_of([email.id]).get(email.id, [])
        return email

    def get_many(self, email_ids: Sequence[int]) -> list[Email]:
        """Emails by id, in the order given (without their timelines)."""
        found: dict[int, Email] = {}
        for chunk in _chunks(list(email_ids)):
            query = select(*_SUMMARY_COLUMNS).where(emails.c.id.in_(chunk))
            found.update((row.id, row_to_email(row)) for row in self.conn.execute(query))
        return [found[i] for i in email_ids if i in found]

    def raw(self, email_id: int) -> bytes | None:
        return self.conn.execute(select(emails.c.raw).where(emails.c.id == email_id)).scalar()

    def by_message_id(self, message_id: str) -> Email | None:
        query = select(*_SUMMARY_COLUMNS).where(emails.c.message_id == message_id.strip("<> "))
        row = self.conn.execute(query).first()
        return row_to_email(row) if row else None

    def latest_to(self, address: str) -> Email | None:
        """The newest email sent to ``address`` (providers' events without a Message-ID)."""
        query = (
            select(*_SUMMARY_COLUMNS)
            .where(emails.c.to_email == address)
            .order_by(emails.c.id.desc())
            .limit(1)
        )
        row = self.conn.execute(query).first()
        return row_to_email(row) if row else None

    def page(
        self,
        *,
        before_id: int | None,
        limit: int,
        contact_id: int | None = None,
        campaign_id: int | None = None,
        automation_id: int | None = None,
        status: str | None = None,
        tag: str | None = None,
        kind: str | None = None,
    ) -> list[Email]:
        """Newest first."""
        query = select(*_SUMMARY_COLUMNS).order_by(emails.c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(emails.c.id < before_id)
        for column, value in (
            (emails.c.contact_id, contact_id),
            (emails.c.campaign_id, campaign_id),
            (emails.c.automation_id, automation_id),
            (emails.c.status, status),
            (emails.c.kind, kind),
        ):
            if value is not None:
                query = query.where(column == value)
        if tag is not None:
            # tags are a JSON list of strings: the quoted tag is in the text exactly then
            query = query.where(emails.c.tags.contains(jsoncodec.dumps(tag).decode()))
        return [row_to_email(row) for row in self.conn.execute(query)]

    def events_of(self, email_ids: Sequence[int]) -> dict[int, list[EmailEvent]]:
        found: dict[int, list[EmailEvent]] = {}
        for chunk in _chunks(list(email_ids)):
            query = (
                select(email_events)
                .where(email_events.c.email_id.in_(chunk))
                .order_by(email_events.c.id)
            )
            for row in self.conn.execute(query):
                found.setdefault(row.email_id, []).append(
                    EmailEvent(row.type, row.at, _loads(row.detail, None))
                )
        return found

    def campaign_counts(self, campaign_id: int) -> dict[str, int]:
        """How many of a campaign's emails are in each status."""
        query = (
            select(emails.c.status, func.count())
            .where(emails.c.campaign_id == campaign_id)
            .group_by(emails.c.status)
        )
        return {status: count for status, count in self.conn.execute(query).tuples()}

    def next_due(self) -> float | None:
        """When the soonest queued or deferred email falls due (or its lease expires)."""
        query = select(func.min(emails.c.next_attempt_at)).where(_DUE)
        value = self.conn.execute(query).scalar()
        return float(value) if value is not None else None

    # -- what rendering a batch needs, one query each -----------------------------------------

    def recipients(self, contact_ids: Iterable[int]) -> dict[int, Recipient]:
        """The contacts of a batch as they are now (attributes, unsubscribed, blocked)."""
        found: dict[int, Recipient] = {}
        columns = (
            contacts.c.id,
            contacts.c.email,
            contacts.c.attributes,
            contacts.c.unsubscribed,
            contacts.c.email_blocked,
        )
        for chunk in _chunks(sorted(set(contact_ids))):
            for row in self.conn.execute(select(*columns).where(contacts.c.id.in_(chunk))):
                found[row.id] = Recipient(
                    row.id,
                    row.email,
                    _loads(row.attributes, {}),
                    bool(row.unsubscribed),
                    _loads(row.email_blocked, None),
                )
        return found

    def template_versions(self, template_ids: Iterable[int]) -> dict[int, int]:
        """The current version of each template that still exists."""
        wanted = sorted(set(template_ids))
        if not wanted:
            return {}
        query = select(email_templates.c.id, email_templates.c.version).where(
            email_templates.c.id.in_(wanted)
        )
        return {row.id: row.version for row in self.conn.execute(query)}

    def template_defaults(self, template_id: int) -> dict[str, Any] | None:
        """A template's sender, reply_to and tags (what an email of it defaults to); None
        when there is no such template."""
        t = email_templates.c
        query = select(t.sender, t.reply_to, t.tags).where(t.id == template_id)
        row = self.conn.execute(query).first()
        if row is None:
            return None
        return {
            "sender": _loads(row.sender, None),
            "reply_to": row.reply_to,
            "tags": _loads(row.tags, []),
        }

    def template_sources(self, template_ids: Iterable[int]) -> dict[int, Content]:
        wanted = sorted(set(template_ids))
        if not wanted:
            return {}
        t = email_templates.c
        query = select(t.id, t.version, t.subject, t.html, t.text).where(t.id.in_(wanted))
        return {
            row.id: Content(row.subject, row.html, row.text, row.version)
            for row in self.conn.execute(query)
        }

    def campaign_contents(self, campaign_ids: Iterable[int]) -> dict[int, Content]:
        """Campaigns' content (copied when sending started; it no longer changes)."""
        wanted = sorted(set(campaign_ids))
        if not wanted:
            return {}
        c = campaigns.c
        query = select(c.id, c.subject, c.html, c.text, c.params).where(c.id.in_(wanted))
        return {
            row.id: Content(row.subject or "", row.html or "", row.text, 0, _loads(row.params, {}))
            for row in self.conn.execute(query)
        }

    # -- Idempotency-Key answers (POST /emails) ----------------------------------------------

    def idempotent_answer(self, scope: str, key: str, since: float) -> tuple[str, str] | None:
        """(request hash, answer) stored for ``key`` of ``scope`` since ``since``, locked for
        this transaction on PostgreSQL."""
        query = select(email_idempotency.c.request_hash, email_idempotency.c.response).where(
            email_idempotency.c.scope == scope,
            email_idempotency.c.key == key,
            email_idempotency.c.created_at >= since,
        )
        row = self.conn.execute(query).first()
        return (row.request_hash, row.response) if row else None

    def remember_answer(
        self, scope: str, key: str, request_hash: str, response: str, now: float
    ) -> bool:
        """Keep an answer for ``key`` (replacing one older than 24 h); False when another
        request stored one first (a race: the caller answers that one)."""
        module = postgresql if self._pg else sqlite
        self.conn.execute(
            delete(email_idempotency).where(
                email_idempotency.c.scope == scope,
                email_idempotency.c.key == key,
                email_idempotency.c.created_at < now - IDEMPOTENCY_WINDOW,
            )
        )
        statement = (
            module.insert(email_idempotency)
            .values(
                scope=scope, key=key, request_hash=request_hash, response=response, created_at=now
            )
            .on_conflict_do_nothing(index_elements=["scope", "key"])
        )
        return bool(self.conn.execute(statement).rowcount)

    def purge_answers(self, before: float) -> int:
        result = self.conn.execute(
            delete(email_idempotency).where(email_idempotency.c.created_at < before)
        )
        return result.rowcount


IDEMPOTENCY_WINDOW = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Recipient:
    """A contact as rendering and skipping need it."""

    id: int
    email: str
    attributes: dict[str, Any]
    unsubscribed: bool
    email_blocked: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Content:
    """A template's or campaign's sources (``version`` keys the compiled cache)."""

    subject: str
    html: str
    text: str | None
    version: int
    params: dict[str, Any] = field(default_factory=dict)
    """A campaign's params: every email's own params are laid over them."""


_RECORD = (
    update(emails)
    .where(emails.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        status_reason=bindparam("b_reason"),
        attempt_count=bindparam("b_attempts"),
        next_attempt_at=bindparam("b_next"),
        lease_owner=None,
        subject=func.coalesce(bindparam("b_subject"), emails.c.subject),
        raw=func.coalesce(bindparam("b_raw"), emails.c.raw),
        links=func.coalesce(bindparam("b_links"), emails.c.links),
        sent_at=func.coalesce(emails.c.sent_at, bindparam("b_sent_at", type_=UTCDateTime())),
        updated_at=bindparam("b_now"),
    )
)


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]
