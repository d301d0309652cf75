"""A campaign's emails as a whole: the recipient snapshot that queues them, and the campaign-wide
updates of those still queued (pause, resume, cancel).

The snapshot is taken in batches by contact id. A batch is one ``INSERT ... SELECT`` of the
recipients between the campaign's ``snapshot_cursor`` and a bound, in the transaction that moves
the cursor to that bound: a crash loses the whole batch or none of it, so a restart resumes
where the last commit stopped and never queues a contact twice (the unique index on
``(campaign_id, contact_id)`` backs this). Message-IDs are made in the same statement: one
time-ordered random base per batch (``ids.email_message_id``) and the row's rank in the batch.

This module never commits, never touches an email a worker is sending right now (its lease
still runs), and never changes the campaign's own status (``campaigns.py`` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Connection,
    Double,
    Integer,
    String,
    and_,
    cast,
    exists,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from hookhub import ids
from hookhub.core import jsoncodec
from hookhub.records.campaign import Campaign
from hookhub.store.emails import EmailStore
from hookhub.store.schema import contacts, list_members
from hookhub.store.schema_base import UTCDateTime
from hookhub.store.schema_email import campaigns, email_events, emails

_PENDING = text("emails.status IN ('queued', 'deferred')")  # the due index's condition
_NO_LIMIT = 2**62


def _json(value: Any) -> str:
    return jsoncodec.dumps(value).decode()


@dataclass(frozen=True, slots=True)
class EmailDefaults:
    """What every email of a campaign's snapshot carries besides its recipient."""

    sender: dict[str, Any]
    domain: str
    """Of the Message-IDs (the sender's domain)."""


@dataclass(frozen=True, slots=True)
class SnapshotStep:
    queued: int
    done: bool


class CampaignEmails:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._pg = conn.dialect.name == "postgresql"

    # -- the recipient snapshot -----------------------------------------------------------------

    def snapshot_batch(
        self,
        campaign: Campaign,
        defaults: EmailDefaults,
        *,
        size: int,
        now: datetime,
        lease_until: float,
    ) -> SnapshotStep:
        """Queue the next batch of the campaign's recipients (at least ``size`` contacts of
        some list, unless fewer remain) and move its cursor past them; the caller holds the
        campaign's lease and its row lock, in this transaction."""
        cursor = campaign.snapshot_cursor or 0
        limit = campaign.snapshot_limit if campaign.snapshot_limit is not None else _NO_LIMIT
        bound, last = self._batch_bound(campaign.list_ids, cursor, limit, size)
        queued = 0
        if bound is not None:
            queued = self._insert_recipients(campaign, defaults, cursor, bound, now)
        done = bound is None or last
        self.conn.execute(
            update(campaigns)
            .where(campaigns.c.id == campaign.id)
            .values(
                snapshot_cursor=bound if bound is not None else cursor,
                snapshot_done=done,
                lease_until=None if done else lease_until,
                lease_owner=None if done else campaign.lease_owner,
                updated_at=now,
            )
        )
        return SnapshotStep(queued, done)

    def _batch_bound(
        self, list_ids: Sequence[int], cursor: int, limit: int, size: int
    ) -> tuple[int | None, bool]:
        """(the highest contact id of the next batch, whether it is the last batch); (None,
        True) when no list has a member left past the cursor.

        The bound is the lowest of each list's ``size``-th member past the cursor (a range scan
        of the list's primary key each), so a batch has at least ``size`` members of one list
        and at most ``size`` of each; without any such member, the rest is the last batch."""
        nth: list[int] = []
        for list_id in sorted(set(list_ids)):
            query = (
                select(list_members.c.contact_id)
                .where(
                    list_members.c.list_id == list_id,
                    list_members.c.contact_id > cursor,
                    list_members.c.contact_id <= limit,
                )
                .order_by(list_members.c.contact_id)
                .offset(size - 1)
                .limit(1)
            )
            found = self.conn.execute(query).scalar()
            if found is not None:
                nth.append(int(found))
        if nth:
            return min(nth), False
        rest = select(func.max(list_members.c.contact_id)).where(
            list_members.c.list_id.in_(sorted(set(list_ids)) or [0]),
            list_members.c.contact_id > cursor,
            list_members.c.contact_id <= limit,
        )
        last = self.conn.execute(rest).scalar()
        return (int(last), True) if last is not None else (None, True)

    def _insert_recipients(
        self, campaign: Campaign, defaults: EmailDefaults, cursor: int, bound: int, now: datetime
    ) -> int:
        c = contacts.c
        member = exists().where(
            list_members.c.contact_id == c.id,
            list_members.c.list_id.in_(sorted(set(campaign.list_ids))),
        )
        conditions = [
            c.id > cursor,
            c.id <= bound,
            member,
            c.unsubscribed == false(),
            c.email_blocked.is_(None),
        ]
        if campaign.exclude_list_ids:
            excluded = exists().where(
                list_members.c.contact_id == c.id,
                list_members.c.list_id.in_(sorted(set(campaign.exclude_list_ids))),
            )
            conditions.append(~excluded)
        base, _, domain = ids.email_message_id(defaults.domain, now.timestamp()).partition("@")
        rank = cast(func.row_number().over(order_by=c.id), String)
        at = now.timestamp()
        columns = {
            "message_id": literal(base + ".") + rank + literal("@" + domain),
            "kind": literal("campaign"),
            "contact_id": c.id,
            "to_email": c.email,
            "sender": literal(_json(defaults.sender)),
            "reply_to": literal(campaign.reply_to, String),
            "campaign_id": literal(campaign.id, Integer),
            "tags": literal(_json(campaign.tags)),
            # The worker renders an email with its own params, sender and flags, and the
            # campaign's content (copied from the template when sending started): no
            # template_id here, or a template edited since would be rendered instead.
            "params": literal(_json(campaign.params)),
            "headers": literal("{}"),
            "track_opens": literal(campaign.track_opens, Boolean),
            "track_clicks": literal(campaign.track_clicks, Boolean),
            "status": literal("queued"),
            "attempt_count": literal(0, Integer),
            "next_attempt_at": literal(at, Double),
            "created_at": literal(now, UTCDateTime()),
            "updated_at": literal(at, Double),
        }
        recipients = select(*(value.label(name) for name, value in columns.items())).where(
            *conditions
        )
        module = postgresql if self._pg else sqlite
        statement = (
            module.insert(emails)
            .from_select(list(columns), recipients, include_defaults=False)
            .on_conflict_do_nothing(index_elements=["campaign_id", "contact_id"])
            .returning(emails.c.id)  # (rowcount is not reported for it on PostgreSQL)
        )
        inserted = len(self.conn.execute(statement).all())
        if inserted:
            EmailStore(self.conn).queued()  # wake the email workers once this commits
        return inserted

    # -- the campaign's queued emails ---------------------------------------------------------

    def _idle(self, campaign_id: int, at: float) -> Any:
        """The campaign's emails still to send that no worker is sending right now (unleased,
        or their lease has run out)."""
        return and_(
            emails.c.campaign_id == campaign_id,
            _PENDING,
            or_(
                emails.c.lease_owner.is_(None),
                emails.c.next_attempt_at.is_(None),
                emails.c.next_attempt_at <= at,
            ),
        )

    def hold_emails(self, campaign_id: int, at: float) -> int:
        """Pause: the campaign's idle queued emails stop being due (``next_attempt_at`` NULL:
        the due index never matches them). Emails in flight finish their attempt."""
        result = self.conn.execute(
            update(emails)
            .where(self._idle(campaign_id, at), emails.c.next_attempt_at.is_not(None))
            .values(next_attempt_at=None, lease_owner=None, updated_at=at)
        )
        return int(result.rowcount)

    def release_emails(self, campaign_id: int, at: float) -> int:
        """Resume: the held emails are due again at once."""
        result = self.conn.execute(
            update(emails)
            .where(
                emails.c.campaign_id == campaign_id, _PENDING, emails.c.next_attempt_at.is_(None)
            )
            .values(next_attempt_at=at, updated_at=at)
        )
        if result.rowcount:
            EmailStore(self.conn).queued()  # due again: wake the email workers
        return int(result.rowcount)

    def skip_emails(self, campaign_id: int, reason: str, at: float) -> int:
        """Cancel: the campaign's idle emails still to send become ``skipped`` with ``reason``,
        each with its timeline event."""
        idle = self._idle(campaign_id, at)
        detail = _json({"reason": reason})
        self.conn.execute(
            insert(email_events).from_select(
                ["email_id", "type", "at", "detail"],
                select(
                    emails.c.id,
                    literal("skipped"),
                    literal(at, Double),
                    literal(detail),
                ).where(idle),
            )
        )
        result = self.conn.execute(
            update(emails)
            .where(idle)
            .values(
                status="skipped",
                status_reason=reason,
                next_attempt_at=None,
                lease_owner=None,
                updated_at=at,
            )
        )
        return int(result.rowcount)

    def has_idle_pending(self, campaign_id: int, at: float, *, held: bool) -> bool:
        """Whether emails escaped a pause (``held``: due again) or a cancel (still pending),
        e.g. an attempt in flight that ended deferred."""
        condition = self._idle(campaign_id, at)
        if held:
            condition = and_(condition, emails.c.next_attempt_at.is_not(None))
        return bool(self.conn.execute(select(exists().where(condition))).scalar())
