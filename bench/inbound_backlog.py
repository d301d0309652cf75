"""Reads Hookhub's request log after an inbound benchmark run: the backlog, its drain, the proof.

After the load stops, :func:`wait_for_drain` polls the number of ``received`` requests (the
acknowledged backlog whose rules have not run yet) until it is zero. :func:`check_processing`
then reads every logged request of the measured run and answers how long the backlog took to
drain, how fast rules ran, and whether every request wrk saw a 202 for was processed into a
contact, a custom event and outbox messages. It only reads the database.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inbound_requests import EMAIL_DOMAIN, email_of_event


@dataclass
class Processing:
    """What became of one measured run's requests, read from the database once drained."""

    acknowledged: int
    """202 answers wrk received."""
    acknowledged_unreadable: int
    """202 answers without a request_id in the body (must be 0)."""
    acknowledged_not_processed: int
    """202-acknowledged requests whose log row is missing or not ``processed`` (must be 0)."""
    logged: int
    """Rows of the measured run in the log (acknowledged, plus in flight when wrk stopped)."""
    by_status: dict[str, int]
    contacts: int
    acknowledged_emails: int
    acknowledged_emails_without_contact: int
    """Emails of acknowledged requests with no contact (must be 0)."""
    events: int
    messages: dict[str, int]
    """Outbox messages by type in the whole database (warm-up included)."""
    processed_total: int
    """Processed rows in the whole database (warm-up included), to compare with messages."""
    backlog_at_stop: int
    """Requests still ``received`` (rules not run) when the load stopped."""
    processed_during_load: int
    drain_seconds: float
    """From the end of the load until the last request of the run was processed."""
    load_seconds: float
    drained: bool
    notes: list[str] = field(default_factory=list)

    @property
    def processing_rate_during_load(self) -> float:
        return self.processed_during_load / self.load_seconds if self.load_seconds else 0.0

    @property
    def drain_rate(self) -> float:
        return self.backlog_at_stop / self.drain_seconds if self.drain_seconds > 0 else 0.0

    @property
    def overall_rate(self) -> float:
        """Rows processed per second from the start of the load to the end of the drain."""
        seconds = self.load_seconds + max(self.drain_seconds, 0.0)
        processed = self.by_status.get("processed", 0)
        return processed / seconds if seconds else 0.0

    @property
    def ok(self) -> bool:
        return (
            self.drained
            and self.acknowledged_unreadable == 0
            and self.acknowledged_not_processed == 0
            and self.acknowledged_emails_without_contact == 0
            and self.acknowledged_emails == self.acknowledged
            and self.by_status.get("processed", 0) == self.logged
            and self.events == self.contacts
            and self.messages.get("contact.created", 0) == self.processed_total
            and self.messages.get("event.tracked", 0) == self.processed_total
        )


class RequestLog:
    """Read-only queries on a Hookhub database, SQLite (a file path) or PostgreSQL (a URL)."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.sqlite_path = (
            Path(database_url.removeprefix("sqlite:///"))
            if database_url.startswith("sqlite:")
            else None
        )

    @contextmanager
    def _cursor(self) -> Iterator[Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]]:
        if self.sqlite_path is not None:
            with closing(sqlite3.connect(self.sqlite_path, timeout=30)) as conn:

                def run_sqlite(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
                    return conn.execute(sql, params).fetchall()

                yield run_sqlite
            return
        import psycopg

        with psycopg.connect(self.url, connect_timeout=5, autocommit=True) as pg:

            def run_pg(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
                return pg.execute(sql.replace("?", "%s"), params).fetchall()

            yield run_pg

    def pending(self) -> int:
        with self._cursor() as query:
            rows = query("SELECT count(*) FROM inbound_requests WHERE status = 'received'", ())
        return int(rows[0][0])

    def newest_id(self) -> int:
        with self._cursor() as query:
            rows = query("SELECT max(id) FROM inbound_requests", ())
        return int(rows[0][0] or 0)

    def rows(self, event_prefix: str) -> list[tuple[Any, ...]]:
        """(id, status, dedupe_key, processed_at) of the requests whose event ids start so."""
        with self._cursor() as query:
            return query(
                "SELECT id, status, dedupe_key, processed_at FROM inbound_requests"
                " WHERE dedupe_key LIKE ?",
                (event_prefix + "%",),
            )

    def contact_emails(self, tag: str) -> set[str]:
        with self._cursor() as query:
            rows = query("SELECT email FROM contacts WHERE email LIKE ?", (f"{tag}-%",))
        return {row[0] for row in rows}

    def events(self, tag: str) -> int:
        with self._cursor() as query:
            rows = query(
                "SELECT count(*) FROM custom_events e JOIN contacts c ON c.id = e.contact_id"
                " WHERE c.email LIKE ? AND e.event_name = 'stripe_customer_created'",
                (f"{tag}-%",),
            )
        return int(rows[0][0])

    def totals(self) -> tuple[dict[str, int], int]:
        """Outbox messages by type, and processed requests, in the whole database."""
        with self._cursor() as query:
            messages = query("SELECT type, count(*) FROM messages GROUP BY type", ())
            processed = query(
                "SELECT count(*) FROM inbound_requests WHERE status = 'processed'", ()
            )
        return {str(t): int(n) for t, n in messages}, int(processed[0][0])


def wait_for_drain(
    log: RequestLog, timeout: float, *, quiet: float = 3.0, interval: float = 0.25
) -> bool:
    """Poll until no request is ``received`` and none was logged for ``quiet`` seconds.

    The quiet period matters: requests that were in flight when wrk stopped can still be
    committed after a poll that saw an empty backlog. False if ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    last_id: int | None = None
    quiet_since: float | None = None
    while True:
        now = time.monotonic()
        pending, newest = log.pending(), log.newest_id()
        if pending == 0 and newest == last_id:
            quiet_since = now if quiet_since is None else quiet_since
            if now - quiet_since >= quiet:
                return True
        else:
            quiet_since = None
        last_id = newest
        if now >= deadline:
            return False
        time.sleep(interval)


def read_acknowledged(ack_prefix: Path) -> list[str]:
    ids: list[str] = []
    for path in sorted(ack_prefix.parent.glob(ack_prefix.name + "-*.txt")):
        ids.extend(line.strip() for line in path.read_text().splitlines() if line.strip())
    return ids


def check_processing(
    log: RequestLog,
    *,
    tag: str,
    acknowledged_ids: Iterable[str],
    load_stopped_at: float,
    load_seconds: float,
    drained: bool,
) -> Processing:
    rows = log.rows(f"evt_{tag}x")
    status_of = {int(row[0]): str(row[1]) for row in rows}
    email_of_row = {int(row[0]): email_of_event(str(row[2])) for row in rows}
    by_status: dict[str, int] = {}
    for status in status_of.values():
        by_status[status] = by_status.get(status, 0) + 1
    processed_at = [float(row[3]) for row in rows if row[3] is not None]
    after_stop = [t for t in processed_at if t > load_stopped_at]

    acked = list(acknowledged_ids)
    readable = [int(x) for x in acked if x.isdigit()]
    not_processed = [i for i in readable if status_of.get(i) != "processed"]
    emails = {email_of_row.get(i) for i in readable}
    emails.discard(None)
    contacts = log.contact_emails(tag)
    messages, processed_total = log.totals()
    notes: list[str] = []
    if not all(e and e.endswith("@" + EMAIL_DOMAIN) for e in email_of_row.values()):
        notes.append("some logged dedupe keys are not the benchmark's event ids")
    return Processing(
        acknowledged=len(acked),
        acknowledged_unreadable=len(acked) - len(readable),
        acknowledged_not_processed=len(not_processed),
        logged=len(rows),
        by_status=by_status,
        contacts=len(contacts),
        acknowledged_emails=len(emails),
        acknowledged_emails_without_contact=len({e for e in emails if e not in contacts}),
        events=log.events(tag),
        messages=messages,
        processed_total=processed_total,
        backlog_at_stop=len(after_stop) + by_status.get("received", 0),
        processed_during_load=len(processed_at) - len(after_stop),
        drain_seconds=(max(after_stop) - load_stopped_at) if after_stop else 0.0,
        load_seconds=load_seconds,
        drained=drained,
        notes=notes,
    )
