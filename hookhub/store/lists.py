"""Queries on lists and list membership."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from hookhub.errors import Conflict
from hookhub.records.contacts import ContactList
from hookhub.store.schema import list_members, lists

_count = (
    select(func.count())
    .where(list_members.c.list_id == lists.c.id)
    .correlate(lists)
    .scalar_subquery()
    .label("contact_count")
)


_NAMES = select(lists.c.id, lists.c.name).where(lists.c.id.in_(bindparam("ids", expanding=True)))
_MEMBERS_AMONG = select(list_members.c.contact_id).where(
    list_members.c.list_id == bindparam("list_id"),
    list_members.c.contact_id.in_(bindparam("ids", expanding=True)),
)
_ADD_MEMBERS = insert(list_members)


def _row_to_list(row: Row[Any]) -> ContactList:
    return ContactList(
        id=row.id, name=row.name, contact_count=row.contact_count, created_at=row.created_at
    )


class ListStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, list_id: int) -> ContactList | None:
        row = self.conn.execute(select(lists, _count).where(lists.c.id == list_id)).first()
        return _row_to_list(row) if row else None

    def names(self, list_ids: Sequence[int]) -> dict[int, str]:
        rows = self.conn.execute(_NAMES, {"ids": sorted(set(list_ids))})
        return {row.id: row.name for row in rows}

    def create(self, name: str, now: datetime) -> ContactList:
        try:
            with self.conn.begin_nested():
                new_id = self.conn.execute(
                    insert(lists).values(name=name, created_at=now).returning(lists.c.id)
                ).scalar_one()
        except IntegrityError as exc:
            raise Conflict(f"A list named {name!r} exists.", details={"name": name}) from exc
        return ContactList(id=new_id, name=name, contact_count=0, created_at=now)

    def rename(self, list_id: int, name: str) -> None:
        try:
            with self.conn.begin_nested():
                self.conn.execute(update(lists).where(lists.c.id == list_id).values(name=name))
        except IntegrityError as exc:
            raise Conflict(f"A list named {name!r} exists.", details={"name": name}) from exc

    def delete(self, list_id: int) -> None:
        self.conn.execute(delete(list_members).where(list_members.c.list_id == list_id))
        self.conn.execute(delete(lists).where(lists.c.id == list_id))

    def page(self, *, after_id: int | None, limit: int) -> list[ContactList]:
        query = select(lists, _count).order_by(lists.c.id).limit(limit)
        if after_id is not None:
            query = query.where(lists.c.id > after_id)
        return [_row_to_list(row) for row in self.conn.execute(query)]

    def members_among(self, list_id: int, contact_ids: Sequence[int]) -> set[int]:
        found: set[int] = set()
        ids = sorted(set(contact_ids))
        for start in range(0, len(ids), 500):
            params = {"list_id": list_id, "ids": ids[start : start + 500]}
            found.update(self.conn.execute(_MEMBERS_AMONG, params).scalars())
        return found

    def add_members(self, rows: list[dict[str, Any]]) -> None:
        """rows: list_id, contact_id, added_at; callers filter out existing members first."""
        if rows:
            self.conn.execute(_ADD_MEMBERS, rows)

    def remove_member(self, list_id: int, contact_id: int) -> bool:
        result = self.conn.execute(
            delete(list_members).where(
                and_(list_members.c.list_id == list_id, list_members.c.contact_id == contact_id)
            )
        )
        return bool(result.rowcount)
