"""CSV import of contacts: streams a file of any size and upserts it in batches.

The header names the columns: ``email`` (required), ``ext_id`` (optional), every other column an
attribute (converted to the attribute's declared type; undeclared attributes become strings).
Each batch is one transaction with its outbox messages; a bad row is rejected with its line
number and reason and never stops the import.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from hookhub import ids
from hookhub.core import jsoncodec
from hookhub.core.contacts import (
    AttributeType,
    coerce_value,
    normalize_attribute_name,
    normalize_email,
    normalize_ext_id,
)
from hookhub.core.origin import Origin
from hookhub.crm.operations import RESERVED_ATTRIBUTES, CrmTx
from hookhub.crm.service import CrmService
from hookhub.errors import HookhubError, ValidationFailed
from hookhub.outbound.outbox import OutboxMessage, build_message
from hookhub.store.imports import ContactImportStore

BATCH_SIZE = 1000
MAX_REJECTIONS_KEPT = 1000
csv.field_size_limit(1024 * 1024)


@dataclass
class ImportReport:
    id: str = ""
    """The import's id: its messages' origin is ``{"type": "import", "id": id}``."""
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejections: list[tuple[int, str]] = field(default_factory=list)

    def reject(self, line: int, reason: str) -> None:
        self.rejected += 1
        if len(self.rejections) < MAX_REJECTIONS_KEPT:
            self.rejections.append((line, reason))


@dataclass(slots=True)
class _Row:
    line: int
    email: str
    ext_id: str | None
    values: dict[str, str]


_UNDECODABLE = re.compile("[\udc80-\udcff]")
"""What surrogateescape decoding makes of bytes that are not UTF-8."""


def _has_undecodable(cells: list[str]) -> bool:
    return any(_UNDECODABLE.search(cell) for cell in cells)


class _CountingReader(io.RawIOBase):
    """Counts the bytes the CSV parser has consumed, for the progress bar."""

    def __init__(self, raw: IO[bytes], on_read: Callable[[int], None]) -> None:
        self._raw = raw
        self._on_read = on_read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self._on_read(len(data))
        return len(data)


class ContactImporter:
    def __init__(self, crm: CrmService, *, batch_size: int = BATCH_SIZE) -> None:
        self.crm = crm
        self.batch_size = batch_size

    def run(
        self,
        source: IO[bytes],
        *,
        list_id: int | None = None,
        on_progress: Callable[[int], None] = lambda _n: None,
        name: str | None = None,
    ) -> ImportReport:
        """``name`` (the file's, say) goes in the origin of the import's messages."""
        # surrogateescape: bytes that are not UTF-8 reach the row they are in (which is then
        # rejected) instead of failing the decoder, which would lose a whole buffer of rows.
        text = io.TextIOWrapper(
            io.BufferedReader(_CountingReader(source, on_progress)),
            encoding="utf-8-sig",
            errors="surrogateescape",
            newline="",
        )
        reader = csv.reader(text)
        try:
            header = next(reader)
        except StopIteration:
            raise ValidationFailed(
                "The file is empty; it needs a header row with 'email'."
            ) from None
        except csv.Error as exc:
            raise ValidationFailed(f"The header row cannot be read: {exc}") from exc
        if _has_undecodable(header):
            raise ValidationFailed("The header row is not valid UTF-8.")
        email_col, ext_col, attribute_cols = self._read_header(header)
        with self.crm.transaction() as tx:
            if list_id is not None:
                tx.require_lists([list_id])
            types = self._declare_columns(tx, attribute_cols)
        report = ImportReport(id=ids.sortable_id("imp"))
        origin = Origin("import", report.id, name)
        analyzed_at = 0
        for batch in self._batches(reader, header, email_col, ext_col, attribute_cols, report):
            with self.crm.transaction(origin) as tx:
                self._apply(tx, batch, types, list_id, report)
            if self.crm.db.backend == "postgresql" and report.created > max(2 * analyzed_at, 1):
                # PostgreSQL plans the per-batch email lookups from table statistics; a table
                # that grew from nothing within one import has none until autovacuum (if it
                # runs at all) catches up, and the lookups turn into scans (measured: 6 s a
                # batch at 45k rows). Refresh them as the table doubles.
                self._analyze()
                analyzed_at = report.created
        return report

    def _analyze(self) -> None:
        with self.crm.db.write() as conn:
            ContactImportStore(conn).analyze_contacts()

    @staticmethod
    def _read_header(header: list[str]) -> tuple[int, int | None, dict[int, str]]:
        lowered = [h.strip().lower() for h in header]
        if "email" not in lowered:
            raise ValidationFailed(
                "The header row has no 'email' column.", details={"header": header[:50]}
            )
        email_col = lowered.index("email")
        ext_col = lowered.index("ext_id") if "ext_id" in lowered else None
        attribute_cols: dict[int, str] = {}
        for index, name in enumerate(header):
            if index in (email_col, ext_col) or not name.strip():
                continue
            attr = normalize_attribute_name(name.strip())
            if attr in RESERVED_ATTRIBUTES or attr in attribute_cols.values():
                raise ValidationFailed(f"Column {name!r} is reserved or repeated.")
            attribute_cols[index] = attr
        return email_col, ext_col, attribute_cols

    @staticmethod
    def _declare_columns(tx: CrmTx, columns: dict[int, str]) -> dict[str, AttributeType]:
        types = tx.attribute_types()
        for name in columns.values():
            if name not in types:
                tx.define_attribute(name, AttributeType.STRING)
        return dict(tx.attribute_types())

    def _batches(
        self,
        reader: Iterator[list[str]],
        header: list[str],
        email_col: int,
        ext_col: int | None,
        attribute_cols: dict[int, str],
        report: ImportReport,
    ) -> Iterator[list[_Row]]:
        batch: dict[str, _Row] = {}
        while True:
            # A quoted field may span lines: a row is reported by the line it starts on.
            line = getattr(reader, "line_num", 0) + 1
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                report.reject(line, f"unreadable row: {exc}")
                continue
            if not any(cell.strip() for cell in record):
                continue
            if _has_undecodable(record):
                report.reject(line, "the row is not valid UTF-8")
                continue
            if len(record) > len(header):
                report.reject(line, f"{len(record)} fields, the header has {len(header)}")
                continue
            record += [""] * (len(header) - len(record))
            try:
                email = normalize_email(record[email_col])
                ext_id = normalize_ext_id(record[ext_col] or None) if ext_col is not None else None
            except HookhubError as exc:
                report.reject(line, exc.message)
                continue
            if email in batch:  # the same contact twice: apply the first before the second
                yield list(batch.values())
                batch = {}
            values = {name: record[i] for i, name in attribute_cols.items() if record[i].strip()}
            batch[email] = _Row(line, email, ext_id, values)
            if len(batch) >= self.batch_size:
                yield list(batch.values())
                batch = {}
        if batch:
            yield list(batch.values())

    def _apply(
        self,
        tx: CrmTx,
        rows: list[_Row],
        types: dict[str, AttributeType],
        list_id: int | None,
        report: ImportReport,
    ) -> None:
        origin = tx.outbox.origin

        def message(event_type: str, data: dict[str, Any]) -> OutboxMessage:
            # Built with the import's origin: stamping it afterwards copied every message.
            return build_message(event_type, data, tx.now, origin=origin)

        prepared: list[tuple[_Row, dict[str, Any]]] = []
        for row in rows:
            try:
                attrs = {n: coerce_value(n, types[n], v) for n, v in row.values.items()}
            except HookhubError as exc:
                report.reject(row.line, exc.message)
                continue
            prepared.append((row, attrs))
        existing = tx.contacts.get_many_by_email([row.email for row, _ in prepared], lock=True)
        owners = tx.contacts.ext_id_owners([r.ext_id for r, _ in prepared if r.ext_id])
        claimed: dict[str, str] = {}
        inserts: list[tuple[_Row, dict[str, Any]]] = []
        updates: list[dict[str, Any]] = []
        messages: list[OutboxMessage] = []
        members: list[tuple[int, str]] = []
        for row, attrs in prepared:
            current = existing.get(row.email)
            if row.ext_id is not None:
                owner = owners.get(row.ext_id)
                other_row = claimed.get(row.ext_id)
                if (owner is not None and (current is None or owner != current.id)) or (
                    other_row is not None and other_row != row.email
                ):
                    report.reject(row.line, f"ext_id {row.ext_id!r} belongs to another contact")
                    continue
                claimed[row.ext_id] = row.email
            if current is None:
                inserts.append((row, attrs))
                continue
            members.append((current.id, current.email))
            merged = {**current.attributes, **attrs}
            changes = {
                name: {"old": current.attributes.get(name), "new": value}
                for name, value in attrs.items()
                if current.attributes.get(name) != value
            }
            new_ext = row.ext_id if row.ext_id is not None else current.ext_id
            if new_ext != current.ext_id:
                changes["ext_id"] = {"old": current.ext_id, "new": new_ext}
            if not changes:
                report.unchanged += 1
                continue
            report.updated += 1
            updates.append(
                {
                    "b_id": current.id,
                    "b_attributes": jsoncodec.dumps(merged).decode(),
                    "b_ext_id": new_ext,
                    "b_updated_at": tx.now,
                }
            )
            messages.append(
                message(
                    "contact.updated",
                    {
                        "contact_id": current.id,
                        "email": current.email,
                        "previous_email": current.email,
                        "changes": changes,
                        "attributes": merged,
                    },
                )
            )
        if inserts:
            # One multi-row INSERT ... RETURNING id, email per batch (an INSERT per row before:
            # RETURNING in parameter order is one statement a row on SQLite).
            new_ids = tx.contacts.insert_new(
                [
                    {
                        "email": row.email,
                        "ext_id": row.ext_id,
                        "attributes": jsoncodec.dumps(attrs).decode(),
                        "unsubscribed": False,
                        "created_at": tx.now,
                        "updated_at": tx.now,
                    }
                    for row, attrs in inserts
                ]
            )
            created_at = jsoncodec.isoformat(tx.now)
            for row, attrs in inserts:
                new_id = new_ids.get(row.email)
                if new_id is None:  # another writer took the email or ext_id meanwhile
                    report.reject(row.line, "the email or ext_id was taken meanwhile; retry")
                    continue
                report.created += 1
                members.append((new_id, row.email))
                messages.append(
                    message(
                        "contact.created",
                        {
                            "contact_id": new_id,
                            "email": row.email,
                            "ext_id": row.ext_id,
                            "attributes": attrs,
                            "list_ids": [list_id] if list_id else [],
                            "unsubscribed": False,
                            "created_at": created_at,
                        },
                    )
                )
        tx.contacts.save_many_attributes(updates)
        if list_id is not None and members:
            already = tx.lists.members_among(list_id, [cid for cid, _ in members])
            fresh = [(cid, email) for cid, email in members if cid not in already]
            tx.lists.add_members(
                [{"list_id": list_id, "contact_id": cid, "added_at": tx.now} for cid, _ in fresh]
            )
            list_name = tx.lists.names([list_id]).get(list_id)
            messages.extend(
                message(
                    "list.contact_added",
                    {"contact_id": cid, "email": email, "list_id": list_id, "list_name": list_name},
                )
                for cid, email in fresh
            )
        tx.outbox.write(messages)
