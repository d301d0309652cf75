"""Date triggers: enrol contacts when a date attribute comes round (a birthday, a renewal).

A ``date`` trigger names an attribute holding ``YYYY-MM-DD`` text (a date attribute, or text
that looks like one) and fires ``offset_days`` from it (``yearly``: every year), at ``at`` in
``timezone``. :class:`DateTriggerScan` finds, for each enabled such automation, the occurrence
day whose moment has come within the last day (so an automation created today does not enrol
every birthday of past years, and a worker that was down for an hour catches up) and the
contacts whose attribute gives that day, and enrols each with ``entry_key`` = the day: once per
occurrence, whatever the number of workers, passes or restarts.

Cost, without an index: the attribute values that give one day are known in advance (one date,
or for ``yearly`` one month and day: 29 February too on the 28th of other years), so a scan is a
``LIKE '%"BIRTHDAY":"____-05-03%'`` on the stored JSON text, in id windows (no JSON is parsed in
the database, no long transaction; matches are checked in Python). One automation's day is
scanned when its moment comes and then every ``rescan`` seconds, for contacts whose attribute
was set since. :class:`DateTriggerLoop` runs a pass every ``interval`` seconds under the
supervisor (``automation-dates``).

It must never enrol a contact for a day whose moment has not come, or hold a write transaction
while it scans.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from hookhub.automation.batch_entry import Entry, enroll_many
from hookhub.automation.registry import AutomationRegistry, Compiled
from hookhub.automation.timing import date_occurrence, local_instant, parse_date_value
from hookhub.clock import Clock
from hookhub.crm.operations import CrmTx
from hookhub.outbound.outbox import Outbox
from hookhub.records.contacts import Contact
from hookhub.store.automation_triggers import (
    contacts_by_id,
    date_candidates,
    entered_with_key,
    like_escape,
    live_automations,
    max_contact_id,
)
from hookhub.store.database import Database
from hookhub.supervisor import Backoff, Heartbeat

log = logging.getLogger("hookhub.automation")

TRIGGER_TYPE = "date"
LOOKBACK = 86400.0
"""How late an occurrence may still be enrolled (seconds after its moment)."""
ID_WINDOW = 50_000
"""Contact ids per scanning query."""
RESCAN = 300.0
INTERVAL = 60.0
BEAT_EVERY = 10.0


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One automation's trigger day and the stored values that give it."""

    day: date
    moment: float
    patterns: tuple[str, ...]


def due_occurrences(compiled: Compiled, now: float) -> list[Occurrence]:
    """The days whose moment (``at`` in ``timezone``) is in ``(now - LOOKBACK, now]``."""
    trigger = compiled.definition.trigger
    zone = trigger.zone
    today = datetime.fromtimestamp(now, zone).date()
    found = []
    for back in (2, 1, 0):
        day = today - timedelta(days=back)
        moment = local_instant(day, trigger.at, zone)
        if now - LOOKBACK < moment <= now:
            found.append(Occurrence(day, moment, _patterns(compiled, day)))
    return found


def _patterns(compiled: Compiled, day: date) -> tuple[str, ...]:
    """LIKE patterns on the attributes' JSON text for values that fire on ``day``."""
    trigger = compiled.definition.trigger
    assert trigger.attribute is not None
    source = day - timedelta(days=trigger.offset_days)
    prefix = f'%"{like_escape(trigger.attribute)}":"'
    if not trigger.yearly:
        return (f"{prefix}{source.isoformat()}%",)
    days = [f"{source.month:02d}-{source.day:02d}"]
    if (source.month, source.day) == (2, 28) and not _leap(source.year):
        days.append("02-29")
    return tuple(f"{prefix}____-{md}%" for md in days)  # any year: "_" is LIKE's any char


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def fires_on(compiled: Compiled, contact: Contact, day: date) -> Any:
    """The contact's attribute value when it fires on ``day`` (None otherwise)."""
    trigger = compiled.definition.trigger
    assert trigger.attribute is not None
    raw = contact.attributes.get(trigger.attribute)
    value = parse_date_value(raw)
    if value is None:
        return None
    fires = date_occurrence(
        value, offset_days=trigger.offset_days, yearly=trigger.yearly, today=day
    )
    return raw if fires == day else None


class DateTriggerScan:
    """Passes over the date-triggered automations; callable directly (tests, a clock moved)."""

    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        registry: AutomationRegistry,
        clock: Clock,
        *,
        id_window: int = ID_WINDOW,
        rescan: float = RESCAN,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.registry = registry
        self.clock = clock
        self.id_window = id_window
        self.rescan = rescan
        self._scanned: dict[tuple[int, int, date], float] = {}
        """(automation, version, day) -> when its last whole scan began."""

    def run_once(self, stopping: threading.Event | None = None, beat: Any = None) -> int:
        """Scan what is due; answers how many contacts were enrolled."""
        now = self.clock.now()
        enrolled = 0
        wanted = set()
        for compiled in self.registry.index().by_trigger.get(TRIGGER_TYPE, ()):
            for occurrence in due_occurrences(compiled, now):
                key = (compiled.id, compiled.automation.version, occurrence.day)
                wanted.add(key)
                last = self._scanned.get(key)
                if last is not None and now - last < self.rescan:
                    continue
                enrolled += self._scan(compiled, occurrence, now, stopping, beat)
                if stopping is not None and stopping.is_set():
                    return enrolled
                self._scanned[key] = now
        for key in set(self._scanned) - wanted:  # past days, edited or removed automations
            del self._scanned[key]
        return enrolled

    def _scan(
        self,
        compiled: Compiled,
        occurrence: Occurrence,
        now: float,
        stopping: threading.Event | None,
        beat: Any,
    ) -> int:
        with self.db.read() as conn:
            until = max_contact_id(conn)
        enrolled = 0
        after = 0
        while after < until:
            upper = min(after + self.id_window, until)
            with self.db.read() as conn:
                found = date_candidates(
                    conn, after_id=after, until_id=upper, patterns=occurrence.patterns
                )
                matched = [c.id for c in found if fires_on(compiled, c, occurrence.day)]
                if matched:
                    done = entered_with_key(conn, compiled.id, occurrence.day.isoformat(), matched)
                    matched = [i for i in matched if i not in done]
            if matched:
                enrolled += self._enrol(compiled, occurrence, matched, now)
            after = upper
            if beat is not None:
                beat()
            if stopping is not None and stopping.is_set():
                break
        if enrolled:
            log.info(
                "automation.date_enrolled",
                extra={
                    "automation_id": compiled.id,
                    "day": occurrence.day.isoformat(),
                    "count": enrolled,
                },
            )
        return enrolled

    def _enrol(
        self, compiled: Compiled, occurrence: Occurrence, contact_ids: Iterable[int], now: float
    ) -> int:
        ids = list(contact_ids)
        for attempt in (1, 2):
            try:
                return self._enrol_once(compiled, occurrence, ids, now)
            except IntegrityError:
                # Another worker enrolled one of them for this day at the same moment: the
                # second try skips the entries it made.
                if attempt == 2:
                    raise
        return 0  # pragma: no cover

    def _enrol_once(
        self, compiled: Compiled, occurrence: Occurrence, contact_ids: list[int], now: float
    ) -> int:
        with self.db.write() as conn:
            live = live_automations(conn, [compiled.id]).get(compiled.id)
            if live is None or not live.enabled or live.version != compiled.automation.version:
                return 0  # changed since: the next pass sees it as it is now
            at = datetime.fromtimestamp(now, UTC)
            tx = CrmTx(conn, self.outbox.writer(conn, origin=compiled.origin), at)
            day = occurrence.day.isoformat()
            attribute = compiled.definition.trigger.attribute
            entries = []
            for contact in contacts_by_id(conn, contact_ids).values():
                value = fires_on(compiled, contact, occurrence.day)
                if value is not None:  # else changed since the scan read it
                    trigger = {"attribute": attribute, "value": value, "date": day}
                    entries.append(Entry(contact, trigger, at))
            entered = enroll_many(tx, compiled, entries, trigger_type=TRIGGER_TYPE, entry_key=day)
        return len(entered)


class DateTriggerLoop:
    """Runs :class:`DateTriggerScan` every ``interval`` seconds until stopped."""

    def __init__(self, scan: DateTriggerScan, *, interval: float = INTERVAL) -> None:
        self.scan = scan
        self.interval = interval
        self.heartbeat = Heartbeat()
        self._stopping = threading.Event()
        self._wake: asyncio.Event | None = None
        self._backoff = Backoff(0.25, 5.0)

    async def run(self) -> None:
        self._wake = asyncio.Event()
        while not self._stopping.is_set():
            self.heartbeat.beat()
            delay = self.interval
            try:
                await asyncio.to_thread(self.scan.run_once, self._stopping, self.heartbeat.beat)
            except Exception as exc:
                delay = self.heartbeat.retry_later(
                    "scan", exc, self._backoff, log, "automation.dates_failed"
                )
            else:
                self._backoff.reset()
                self.heartbeat.recovered("scan")
            await self._idle(delay)

    async def _idle(self, seconds: float) -> None:
        """Wait ``seconds`` (or until stopped), beating the heartbeat meanwhile: a pass a
        minute is no stall."""
        assert self._wake is not None
        clock = self.heartbeat.clock
        until = clock() + seconds
        while not self._stopping.is_set() and (left := until - clock()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(left, BEAT_EVERY))
            self.heartbeat.beat()

    def stop(self) -> None:
        self._stopping.set()
        if self._wake is not None:
            self._wake.set()
