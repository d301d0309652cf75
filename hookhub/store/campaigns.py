"""Every query on campaigns, the recipient snapshot's INSERT, and the campaign-wide updates of
a campaign's queued emails (pause, resume, cancel).

The snapshot is taken in batches by contact id. A batch is one ``INSERT ... SELECT`` of the
recipients between the campaign's ``snapshot_cursor`` and a bound, in the transaction that moves
the cursor to that bound: a crash loses the whole batch or none of it, so a restart resumes
where the last commit stopped and never queues a contact twice (the unique index on
``(campaign_id, contact_id)`` backs this). Message-IDs are made in the same statement: one
time-ordered random base per batch (``ids.email_message_id``) and the row's rank in the batch.

A campaign is leased to one worker at a time (``lease_owner``/``lease_until``), row-locked
with ``FOR UPDATE`` on PostgreSQL whenever its state is read to be changed. This module never
commits, and no other module writes campaigns' SQL.
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
    Row,
    String,
    and_,
    cast,
    delete,
    distinct,
    exists,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from hookhub import ids
from hookhub.core import jsoncodec
from hookhub.records.campaign import Campaign
from hookhub.store.emails import EmailStore
from hookhub.store.schema import (
    UTCDateTime,
    campaigns,
    contacts,
    email_events,
    emails,
    list_members,
    lists,
)

_PENDING = text("emails.status IN ('queued', 'deferred')")  # the due index's condition
_REPORTS = text("email_events.type IN ('bounced', 'complained', 'unsubscribed')")
_SOFT = '"bounce_type":"soft"'
_NO_LIMIT = 2**62
_FINISHED = select(campaigns.c.id).where(
    campaigns.c.status == "sending",
    campaigns.c.snapshot_done == true(),
    ~exists().where(emails.c.campaign_id == campaigns.c.id, _PENDING),
)


def _json(value: Any) -> str:
    return jsoncodec.dumps(value).decode()


def _loads(value: str | None, default: Any) -> Any:
    return jsoncodec.loads(value) if value else default


def row_to_campaign(row: Row[Any]) -> Campaign:
    return Campaign(
        id=row.id,
        name=row.name,
        status=row.status,
        template_id=row.template_id,
        subject=row.subject,
        html=row.html,
        text=row.text,
        sender=_loads(row.sender, None),
        reply_to=row.reply_to,
        params=_loads(row.params, {}),
        tags=_loads(row.tags, []),
        list_ids=_loads(row.list_ids, []),
        exclude_list_ids=_loads(row.exclude_list_ids, []),
        track_opens=bool(row.track_opens),
        track_clicks=bool(row.track_clicks),
        scheduled_at=row.scheduled_at,
        snapshot_cursor=row.snapshot_cursor,
        snapshot_limit=row.snapshot_limit,
        snapshot_done=bool(row.snapshot_done),
        lease_owner=row.lease_owner,
        lease_until=row.lease_until,
        started_at=row.started_at,
        finished_at=row.finished_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def campaign_values(fields: dict[str, Any]) -> dict[str, Any]:
    """Column values from campaign fields (JSON columns serialized)."""
    values = dict(fields)
    for name in ("params", "tags", "list_ids", "exclude_list_ids"):
        if name in values:
            values[name] = _json(values[name])
    if "sender" in values:
        values["sender"] = _json(values["sender"]) if values["sender"] is not None else None
    return values


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


class CampaignStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._pg = conn.dialect.name == "postgresql"

    # -- campaigns ----------------------------------------------------------------------------

    def create(self, fields: dict[str, Any], now: datetime) -> int:
        values = campaign_values(fields)
        values.update(status="draft", snapshot_done=False, created_at=now, updated_at=now)
        statement = insert(campaigns).values(values).returning(campaigns.c.id)
        return int(self.conn.execute(statement).scalar_one())

    def get(self, campaign_id: int, *, lock: bool = False) -> Campaign | None:
        query = select(campaigns).where(campaigns.c.id == campaign_id)
        if lock and self._pg:
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        return row_to_campaign(row) if row else None

    def page(self, *, before_id: int | None, limit: int) -> list[Campaign]:
        """Newest first."""
        query = select(campaigns).order_by(campaigns.c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(campaigns.c.id < before_id)
        return [row_to_campaign(row) for row in self.conn.execute(query)]

    def update(self, campaign_id: int, fields: dict[str, Any], now: datetime) -> None:
        values = campaign_values(fields)
        values["updated_at"] = now
        self.conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(values))

    def delete(self, campaign_id: int) -> None:
        """The campaign and its emails (with their timelines)."""
        mine = select(emails.c.id).where(emails.c.campaign_id == campaign_id)
        self.conn.execute(delete(email_events).where(email_events.c.email_id.in_(mine)))
        self.conn.execute(delete(emails).where(emails.c.campaign_id == campaign_id))
        self.conn.execute(delete(campaigns).where(campaigns.c.id == campaign_id))

    def missing_lists(self, list_ids: Sequence[int]) -> list[int]:
        wanted = sorted(set(list_ids))
        if not wanted:
            return []
        found = set(self.conn.execute(select(lists.c.id).where(lists.c.id.in_(wanted))).scalars())
        return [list_id for list_id in wanted if list_id not in found]

    def newest_contact_id(self) -> int:
        newest = self.conn.execute(select(func.max(contacts.c.id))).scalar()
        return int(newest) if newest is not None else 0

    # -- the loop's work ----------------------------------------------------------------------

    def lease_next(self, owner: str, now: float, until: float) -> Campaign | None:
        """Lease a campaign that needs a worker: scheduled and due, or sending with its
        snapshot unfinished; none leased by another worker whose lease still runs."""
        query = (
            select(campaigns.c.id)
            .where(
                or_(
                    and_(campaigns.c.status == "sending", campaigns.c.snapshot_done == false()),
                    and_(campaigns.c.status == "scheduled", campaigns.c.scheduled_at <= now),
                ),
                or_(
                    campaigns.c.lease_until.is_(None),
                    campaigns.c.lease_until < now,
                    campaigns.c.lease_owner == owner,
                ),
            )
            .order_by(campaigns.c.id)
            .limit(1)
        )
        if self._pg:
            query = query.with_for_update(skip_locked=True)
        campaign_id = self.conn.execute(query).scalar()
        if campaign_id is None:
            return None
        self.conn.execute(
            update(campaigns)
            .where(campaigns.c.id == campaign_id)
            .values(lease_owner=owner, lease_until=until)
        )
        return self.get(campaign_id)

    def release(self, campaign_id: int, owner: str) -> None:
        self.conn.execute(
            update(campaigns)
            .where(campaigns.c.id == campaign_id, campaigns.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )

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

    def start(self, campaign_id: int, now: datetime) -> None:
        """A scheduled campaign is due: it starts sending; its recipients are among the
        contacts that exist now."""
        self.conn.execute(
            update(campaigns)
            .where(campaigns.c.id == campaign_id)
            .values(
                status="sending",
                started_at=now,
                updated_at=now,
                snapshot_limit=self.newest_contact_id(),
            )
        )

    def finished(self) -> list[int]:
        """Sending campaigns whose snapshot is done and whose emails have all left the
        queue."""
        return list(self.conn.execute(_FINISHED).scalars())

    def mark_sent(self, campaign_ids: Sequence[int], now: datetime) -> None:
        """Those of ``campaign_ids`` still finished are ``sent``."""
        self.conn.execute(
            update(campaigns)
            .where(campaigns.c.id.in_(list(campaign_ids)), campaigns.c.id.in_(_FINISHED))
            .values(status="sent", finished_at=now, updated_at=now)
        )

    def recently_stopped(self, since: datetime) -> list[tuple[int, str]]:
        """(id, status) of campaigns paused or cancelled since ``since``: emails that were in
        flight then may still come back to the queue."""
        query = select(campaigns.c.id, campaigns.c.status).where(
            or_(
                and_(campaigns.c.status == "paused", campaigns.c.updated_at >= since),
                and_(campaigns.c.status == "cancelled", campaigns.c.finished_at >= since),
            )
        )
        return [(row.id, row.status) for row in self.conn.execute(query)]

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

    # -- stats ----------------------------------------------------------------------------

    def stats(self, campaign_id: int) -> dict[str, int]:
        """Live counts, each from an index: statuses (``campaign_id, status``), the partial
        indexes of sent, opened and clicked emails, and the report events' partial index."""
        mine = emails.c.campaign_id == campaign_id
        by_status: dict[str, int] = {
            status: count
            for status, count in self.conn.execute(
                select(emails.c.status, func.count()).where(mine).group_by(emails.c.status)
            )
        }

        def count(column: Any) -> int:
            query = select(func.count()).select_from(emails).where(mine, column.is_not(None))
            return int(self.conn.execute(query).scalar_one())

        reports = (
            select(email_events.c.type, func.count(distinct(email_events.c.email_id)))
            .select_from(email_events.join(emails, emails.c.id == email_events.c.email_id))
            .where(
                _REPORTS,
                mine,
                or_(email_events.c.type != "bounced", email_events.c.detail.contains(_SOFT)),
            )
            .group_by(email_events.c.type)
        )
        reported: dict[str, int] = {kind: n for kind, n in self.conn.execute(reports)}
        return {
            "recipients": sum(by_status.values()),
            "sent": count(emails.c.sent_at),
            "delivered": by_status.get("delivered", 0),
            "opened_unique": count(emails.c.opened_at),
            "clicked_unique": count(emails.c.clicked_at),
            "bounced_hard": by_status.get("bounced", 0),
            "bounced_soft": reported.get("bounced", 0),
            "complained": reported.get("complained", 0),
            "unsubscribed": reported.get("unsubscribed", 0),
            "failed": by_status.get("failed", 0),
            "skipped": by_status.get("skipped", 0),
        }
