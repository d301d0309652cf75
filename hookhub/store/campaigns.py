"""Every query on campaigns themselves: create, read, edit and delete them, lease one to a
campaign worker, start it, find the finished ones and mark them sent.

A campaign is leased to one worker at a time (``lease_owner``/``lease_until``), row-locked
with ``FOR UPDATE`` on PostgreSQL whenever its state is read to be changed. The recipient
snapshot and the campaign-wide updates of its queued emails (pause, resume, cancel) are
``campaign_emails.py``'s; the live stats ``campaign_stats.py``'s. This module never commits,
and no other module writes campaigns' SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    and_,
    delete,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    text,
    true,
    update,
)

from hookhub.core import jsoncodec
from hookhub.records.campaign import Campaign
from hookhub.store.schema import contacts, lists
from hookhub.store.schema_email import campaigns, email_events, emails

_PENDING = text("emails.status IN ('queued', 'deferred')")  # the due index's condition
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
