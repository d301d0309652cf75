"""A campaign's live stats (recipients, sent, delivered, opens, clicks, bounces, complaints,
unsubscribes, failures, skips), counted when asked.

Each count is read from an index: statuses (``campaign_id, status``), the partial indexes of
sent, opened and clicked emails, and the report events' partial index. This module must never
write, and never count by reading a campaign's email rows one by one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, distinct, func, or_, select, text

from hookhub.store.schema_email import email_events, emails

_REPORTS = text("email_events.type IN ('bounced', 'complained', 'unsubscribed')")
_SOFT = '"bounce_type":"soft"'


def campaign_stats(conn: Connection, campaign_id: int) -> dict[str, int]:
    """Live counts, each from an index: statuses (``campaign_id, status``), the partial
    indexes of sent, opened and clicked emails, and the report events' partial index."""
    mine = emails.c.campaign_id == campaign_id
    by_status: dict[str, int] = {
        status: count
        for status, count in conn.execute(
            select(emails.c.status, func.count()).where(mine).group_by(emails.c.status)
        )
    }

    def count(column: Any) -> int:
        query = select(func.count()).select_from(emails).where(mine, column.is_not(None))
        return int(conn.execute(query).scalar_one())

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
    reported: dict[str, int] = {kind: n for kind, n in conn.execute(reports)}
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
