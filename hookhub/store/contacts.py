"""Queries on contacts, their list memberships and attribute definitions.

Managers own their SQL; services call them inside a transaction they opened. Nothing here
decides policy (who may change what, which events fire): that is ``hookhub.crm``.
"""

from __future__ import annotations

import contextlib
import weakref
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Row,
    String,
    any_,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from hookhub.core import jsoncodec
from hookhub.core.contacts import AttributeType
from hookhub.records.contacts import Contact
from hookhub.store.database import after_commit
from hookhub.store.schema import attribute_definitions, contacts, list_members

_IN_CHUNK = 500  # keeps IN (...) lists under SQLite's bound-parameter limit

# Statements run on every request are built once: SQLAlchemy then reuses their compiled form
# instead of rebuilding and re-keying them per call (measured: 59 us instead of 200 us a query).
_SELECT = select(contacts)
_BY_ID = _SELECT.where(contacts.c.id == bindparam("id"))
_BY_EMAIL = _SELECT.where(contacts.c.email == bindparam("email"))
_BY_EXT_ID = _SELECT.where(contacts.c.ext_id == bindparam("ext_id"))
_LOCKED = {
    name: query.with_for_update()
    for name, query in (("id", _BY_ID), ("email", _BY_EMAIL), ("ext_id", _BY_EXT_ID))
}
_UNLOCKED = {"id": _BY_ID, "email": _BY_EMAIL, "ext_id": _BY_EXT_ID}
_INSERT = {
    dialect: module.insert(contacts).on_conflict_do_nothing().returning(contacts.c.id)
    for dialect, module in (("postgresql", postgresql), ("sqlite", sqlite))
}
_NEW_COLUMNS = ("email", "ext_id", "attributes", "unsubscribed", "created_at", "updated_at")
_INSERT_CHUNK = 1000  # 6,000 parameters a statement: within SQLite's and PostgreSQL's limits


def _bind_processor(column: str, dialect: Any) -> Any:
    """The column type's own conversion of a bound value (None when it has none)."""
    return contacts.c[column].type._cached_bind_processor(dialect)


_SAVE = (
    update(contacts)
    .where(contacts.c.id == bindparam("b_id"))
    .values(
        email=bindparam("b_email"),
        ext_id=bindparam("b_ext_id"),
        attributes=bindparam("b_attributes"),
        unsubscribed=bindparam("b_unsubscribed"),
        updated_at=bindparam("b_updated_at"),
    )
)
_LIST_IDS = {
    # On PostgreSQL one array parameter (``= ANY($1)``), not ``IN ($1, ..., $100)``: planning
    # the hundred-value list took 40-120 ms a query on a 100,000-member list (psycopg, this
    # machine), the array 0.2-0.5 ms; it is also one statement text whatever the count.
    "postgresql": select(list_members.c.contact_id, list_members.c.list_id)
    .where(list_members.c.contact_id == any_(bindparam("ids", type_=postgresql.ARRAY(BigInteger))))
    .order_by(list_members.c.list_id),
    "sqlite": select(list_members.c.contact_id, list_members.c.list_id)
    .where(list_members.c.contact_id.in_(bindparam("ids", expanding=True)))
    .order_by(list_members.c.list_id),
}
_EMAILS_PG = contacts.c.email == any_(bindparam("emails", type_=postgresql.ARRAY(String)))
_EXT_IDS_PG = contacts.c.ext_id == any_(bindparam("ext_ids", type_=postgresql.ARRAY(String)))
_BY_EMAILS = {
    # PostgreSQL takes the emails as one array (``= ANY($1)``): ``IN`` with hundreds of
    # parameters is planned anew for every count, and once psycopg prepares it, a generic
    # plan could scan the table (RESULTS.md: 3-6 s a lookup during a 100,000-row import).
    ("postgresql", False): select(contacts).where(_EMAILS_PG),
    ("postgresql", True): select(contacts).where(_EMAILS_PG).with_for_update(),
    ("sqlite", False): select(contacts).where(
        contacts.c.email.in_(bindparam("emails", expanding=True))
    ),
}
_BY_EMAILS["sqlite", True] = _BY_EMAILS["sqlite", False]
_EXT_ID_OWNERS = {
    "postgresql": select(contacts.c.ext_id, contacts.c.id).where(_EXT_IDS_PG),
    "sqlite": select(contacts.c.ext_id, contacts.c.id).where(
        contacts.c.ext_id.in_(bindparam("ext_ids", expanding=True))
    ),
}


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


def row_to_contact(row: Row[Any]) -> Contact:
    return Contact(
        id=row.id,
        email=row.email,
        ext_id=row.ext_id,
        attributes=jsoncodec.loads(row.attributes),
        unsubscribed=bool(row.unsubscribed),
        created_at=row.created_at,
        updated_at=row.updated_at,
        email_blocked=jsoncodec.loads(row.email_blocked) if row.email_blocked else None,
    )


class ContactStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._pg = conn.dialect.name == "postgresql"

    def _select(self, *, lock: bool = False) -> Any:
        query = select(contacts)
        return query.with_for_update() if lock and self._pg else query

    def _one(self, key: str, value: object, lock: bool) -> Contact | None:
        statement = (_LOCKED if lock and self._pg else _UNLOCKED)[key]
        row = self.conn.execute(statement, {key: value}).first()
        return row_to_contact(row) if row else None

    def get(self, contact_id: int, *, lock: bool = False) -> Contact | None:
        return self._one("id", contact_id, lock)

    def get_by_email(self, email: str, *, lock: bool = False) -> Contact | None:
        return self._one("email", email, lock)

    def get_by_ext_id(self, ext_id: str, *, lock: bool = False) -> Contact | None:
        return self._one("ext_id", ext_id, lock)

    def get_many(self, ids: Sequence[int], *, lock: bool = False) -> dict[int, Contact]:
        """The contacts of ``ids`` that exist (locked in id order on PostgreSQL with
        ``lock``), without their list ids (:meth:`attach_list_ids`)."""
        found: dict[int, Contact] = {}
        for chunk in _chunks(sorted(set(ids))):
            query = self._select(lock=lock).where(contacts.c.id.in_(chunk)).order_by(contacts.c.id)
            for row in self.conn.execute(query):
                found[row.id] = row_to_contact(row)
        return found

    def _lookup_chunks(self, values: Sequence[str]) -> Iterable[list[str]]:
        """Sorted distinct values in chunks: SQLite's ``IN`` lists stay under its parameter
        limit; PostgreSQL's array takes them all at once."""
        ordered = sorted(set(values))
        if self._pg:
            if ordered:
                yield ordered
            return
        for chunk in _chunks(ordered):
            yield list(chunk)

    def get_many_by_email(self, emails: Sequence[str], *, lock: bool = False) -> dict[str, Contact]:
        found: dict[str, Contact] = {}
        statement = _BY_EMAILS[self.conn.dialect.name, lock]
        for chunk in self._lookup_chunks(emails):
            for row in self.conn.execute(statement, {"emails": chunk}):
                found[row.email] = row_to_contact(row)
        return found

    def ext_id_owners(self, ext_ids: Sequence[str]) -> dict[str, int]:
        owners: dict[str, int] = {}
        statement = _EXT_ID_OWNERS[self.conn.dialect.name]
        for chunk in self._lookup_chunks(ext_ids):
            rows = self.conn.execute(statement, {"ext_ids": chunk})
            owners.update({row.ext_id: row.id for row in rows})
        return owners

    def existing_ids(self, ids: Sequence[int]) -> set[int]:
        found: set[int] = set()
        for chunk in _chunks(sorted(set(ids))):
            query = select(contacts.c.id).where(contacts.c.id.in_(chunk))
            found.update(self.conn.execute(query).scalars())
        return found

    def insert(
        self,
        *,
        email: str,
        ext_id: str | None,
        attributes: dict[str, Any],
        now: datetime,
        unsubscribed: bool = False,
    ) -> Contact | None:
        """Insert, or return None when the email or ext_id is taken (a concurrent writer)."""
        values = {
            "email": email,
            "ext_id": ext_id,
            "attributes": jsoncodec.dumps(attributes).decode(),
            "unsubscribed": unsubscribed,
            "created_at": now,
            "updated_at": now,
        }
        new_id = self.conn.execute(_INSERT[self.conn.dialect.name], values).scalar()
        if new_id is None:
            return None
        return Contact(
            id=new_id,
            email=email,
            ext_id=ext_id,
            attributes=attributes,
            unsubscribed=unsubscribed,
            created_at=now,
            updated_at=now,
        )

    def insert_new(self, rows: list[dict[str, Any]]) -> dict[str, int]:
        """Insert the contacts whose email and ext_id are free, in multi-row statements
        (rows as :meth:`insert`'s values, attributes as JSON text); answers the new ids by
        email. A row whose email or ext_id is taken is skipped, not an error.

        The statement goes to the driver as is, its values bound through the columns' own
        bind processors, a batch's shared timestamp converted once: SQLAlchemy's per-row
        parameter processing was most of this insert's cost in the import's profile.
        """
        found: dict[str, int] = {}
        if not rows:
            return found
        dialect = self.conn.dialect
        processors = [_bind_processor(name, dialect) for name in _NEW_COLUMNS]
        marker = "?" if dialect.paramstyle == "qmark" else "%s"
        row_marks = "(" + ", ".join([marker] * len(_NEW_COLUMNS)) + ")"
        memo: dict[int, Any] = {}  # id(datetime) -> bound value: a batch shares one "now"
        for start in range(0, len(rows), _INSERT_CHUNK):
            chunk = rows[start : start + _INSERT_CHUNK]
            params: list[Any] = []
            for row in chunk:
                for name, process in zip(_NEW_COLUMNS, processors, strict=True):
                    value = row[name]
                    if isinstance(value, datetime):
                        key = id(value)
                        bound = memo.get(key)
                        if bound is None:
                            bound = memo[key] = process(value) if process else value
                        params.append(bound)
                    else:
                        params.append(process(value) if process else value)
            statement = (
                f"INSERT INTO {contacts.name} ({', '.join(_NEW_COLUMNS)}) VALUES "
                + ", ".join([row_marks] * len(chunk))
                + " ON CONFLICT DO NOTHING RETURNING id, email"
            )
            for new_id, email in self.conn.exec_driver_sql(statement, tuple(params)):
                found[email] = int(new_id)
        return found

    def insert_many(self, rows: list[dict[str, Any]]) -> None:
        """Bulk insert for imports: rows hold email, ext_id, attributes (JSON text), times."""
        if rows:
            self.conn.execute(insert(contacts), rows)

    def save(self, contact: Contact) -> None:
        self.conn.execute(
            _SAVE,
            {
                "b_id": contact.id,
                "b_email": contact.email,
                "b_ext_id": contact.ext_id,
                "b_attributes": jsoncodec.dumps(contact.attributes).decode(),
                "b_unsubscribed": contact.unsubscribed,
                "b_updated_at": contact.updated_at,
            },
        )

    def save_many_attributes(self, rows: list[dict[str, Any]]) -> None:
        """Bulk update for imports: rows hold b_id, attributes (JSON text), ext_id, updated_at."""
        if rows:
            statement = (
                update(contacts)
                .where(contacts.c.id == bindparam("b_id"))
                .values(
                    attributes=bindparam("b_attributes"),
                    ext_id=bindparam("b_ext_id"),
                    updated_at=bindparam("b_updated_at"),
                )
            )
            self.conn.execute(statement, rows)

    def set_email_blocked(self, contact_id: int, blocked: dict[str, Any] | None) -> None:
        """Block the contact from email (``{"reason", "at"}``), or lift the block (None)."""
        value = jsoncodec.dumps(blocked).decode() if blocked is not None else None
        self.conn.execute(
            update(contacts).where(contacts.c.id == contact_id).values(email_blocked=value)
        )

    def delete(self, contact_id: int) -> None:
        self.conn.execute(delete(contacts).where(contacts.c.id == contact_id))

    def page(
        self,
        *,
        after_id: int | None,
        limit: int,
        list_id: int | None = None,
        email: str | None = None,
        ext_id: str | None = None,
    ) -> list[Contact]:
        """Contacts in id order after ``after_id`` (keyset pagination).

        A list's page walks the list's own rows (its primary key is ``(list_id, contact_id)``)
        from the cursor on and joins each to its contact, so a page costs the same at any
        depth; ``contacts.id IN (SELECT ... list_id = ?)`` built the whole list first (SQLite:
        31 ms a page for a 100,000-contact list, 0.09 ms this way).
        """
        if list_id is not None:
            key = list_members.c.contact_id
            query = (
                select(contacts)
                .select_from(list_members.join(contacts, contacts.c.id == key))
                .where(list_members.c.list_id == list_id)
            )
        else:
            key = contacts.c.id
            query = select(contacts)
        query = query.order_by(key).limit(limit)
        if after_id is not None:
            query = query.where(key > after_id)
        if email is not None:
            query = query.where(contacts.c.email == email)
        if ext_id is not None:
            query = query.where(contacts.c.ext_id == ext_id)
        return [row_to_contact(row) for row in self.conn.execute(query)]

    def attach_list_ids(self, items: Sequence[Contact]) -> None:
        """Fill ``list_ids`` of each contact with one query per 500 contacts."""
        by_contact: dict[int, list[int]] = defaultdict(list)
        for chunk in _chunks([c.id for c in items]):
            statement = _LIST_IDS[self.conn.dialect.name]
            for row in self.conn.execute(statement, {"ids": list(chunk)}):
                by_contact[row.contact_id].append(row.list_id)
        for contact in items:
            contact.list_ids = by_contact.get(contact.id, [])

    def count(self) -> int:
        return int(self.conn.execute(select(func.count()).select_from(contacts)).scalar_one())


_ATTRIBUTE_TYPES = select(attribute_definitions.c.name, attribute_definitions.c.type)
# Definitions are only ever added, and an attribute's type never changes, so what a process
# has read stays true: it is kept per database and re-read only for a name it does not know.
_known_types: weakref.WeakKeyDictionary[Engine, dict[str, AttributeType]] = (
    weakref.WeakKeyDictionary()
)


class AttributeStore:
    """Declared attribute types. An attribute's type is fixed by its first value or declaration."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._pg = conn.dialect.name == "postgresql"

    def all(self) -> dict[str, AttributeType]:
        types = {row.name: AttributeType(row.type) for row in self.conn.execute(_ATTRIBUTE_TYPES)}
        _known_types[self.conn.engine] = dict(types)
        return types

    def known(self) -> dict[str, AttributeType]:
        """The types this process has seen (may miss recent definitions: then call all())."""
        return dict(_known_types.get(self.conn.engine) or self.all())

    def listing(self) -> list[dict[str, Any]]:
        query = select(attribute_definitions).order_by(attribute_definitions.c.name)
        return [dict(row._mapping) for row in self.conn.execute(query)]

    def define(self, name: str, kind: AttributeType, now: datetime) -> AttributeType:
        """Declare ``name`` unless it exists; answers the type it has now."""
        dialect_insert = postgresql.insert if self._pg else sqlite.insert
        self.conn.execute(
            dialect_insert(attribute_definitions)
            .values(name=name, type=kind.value, created_at=now)
            .on_conflict_do_nothing()
        )
        query = select(attribute_definitions.c.type).where(attribute_definitions.c.name == name)
        actual = AttributeType(self.conn.execute(query).scalar_one())
        engine = self.conn.engine

        def remember() -> None:  # only once committed: a rolled-back definition never existed
            _known_types.setdefault(engine, {})[name] = actual

        with contextlib.suppress(RuntimeError):  # outside a write transaction: nothing to keep
            after_commit(self.conn, remember)
        return actual
