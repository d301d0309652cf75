"""Queries on email templates: every statement that reads or writes ``email_templates``.

JSON columns (``sender``, ``tags``) are text written by ``hookhub.core.jsoncodec``. An update
bumps ``version`` in the same statement, so a process holding a compiled template keyed by
``(id, version)`` never renders an edited template from its stale copy.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from hookhub.core import jsoncodec
from hookhub.records.email_templates import StoredTemplate
from hookhub.store.schema_email import email_templates

EDITABLE = frozenset({"name", "subject", "html", "text", "sender", "reply_to", "tags"})


def _row_to_template(row: Row[Any]) -> StoredTemplate:
    return StoredTemplate(
        id=row.id,
        name=row.name,
        subject=row.subject,
        html=row.html,
        text=row.text,
        sender=jsoncodec.loads(row.sender) if row.sender else None,
        reply_to=row.reply_to,
        tags=jsoncodec.loads(row.tags) if row.tags else [],
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _columns(fields: dict[str, Any]) -> dict[str, Any]:
    values = {key: fields[key] for key in EDITABLE if key in fields}
    if "sender" in values:
        sender = values["sender"]
        values["sender"] = None if sender is None else jsoncodec.dumps(sender).decode()
    if "tags" in values:
        values["tags"] = jsoncodec.dumps(values["tags"] or []).decode()
    return values


class EmailTemplateStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def create(self, fields: dict[str, Any], now: datetime) -> StoredTemplate:
        values = {"text": None, "sender": None, "reply_to": None, "tags": [], **fields}
        new_id = self.conn.execute(
            insert(email_templates)
            .values(**_columns(values), version=1, created_at=now, updated_at=now)
            .returning(email_templates.c.id)
        ).scalar_one()
        created = self.get(new_id)
        assert created is not None
        return created

    def get(self, template_id: int) -> StoredTemplate | None:
        row = self.conn.execute(
            select(email_templates).where(email_templates.c.id == template_id)
        ).first()
        return _row_to_template(row) if row else None

    def page(self, *, after_id: int | None, limit: int) -> list[StoredTemplate]:
        query = select(email_templates).order_by(email_templates.c.id).limit(limit)
        if after_id is not None:
            query = query.where(email_templates.c.id > after_id)
        return [_row_to_template(row) for row in self.conn.execute(query)]

    def update(self, template_id: int, fields: dict[str, Any], now: datetime) -> bool:
        """Writes the given fields and bumps the version; False if there is no such template."""
        result = self.conn.execute(
            update(email_templates)
            .where(email_templates.c.id == template_id)
            .values(**_columns(fields), version=email_templates.c.version + 1, updated_at=now)
        )
        return bool(result.rowcount)

    def delete(self, template_id: int) -> bool:
        result = self.conn.execute(
            delete(email_templates).where(email_templates.c.id == template_id)
        )
        return bool(result.rowcount)
