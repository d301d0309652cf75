"""The overview's activity figures: windows, series, percentiles, and a cache that keeps the
page fast on a large database.

A window (hour, day, week) is read with one GROUP BY per kind (``store.dashboard_stats``),
which on a million rows takes longer than a page may (a week of 1,000,000 delivery attempts:
about 3.5 s on SQLite, the time spent evaluating every row of the index range; a covering index
only took it to 2-3 s). So the figures are cached per window, for as long as a small part of
one of its bars (15 s for the hour's 5-minute bars, 1 min for the day, 5 min for the week: a
refresh of the week costs a core for seconds); a request that finds them stale is answered with
the stale figures (and their age) while one refresh runs in a thread; only the very first
request of a window waits.
Percentiles are read from the latency histogram: the upper edge of the bucket holding the
quantile (an upper bound, exact to the bucket).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from hookhub.store.dashboard_stats import KINDS, LATENCY_EDGES_MS, ActivityCell, activity
from hookhub.store.database import Database

FRESH = 15.0
"""Seconds the hour's figures stay fresh (longer windows: :attr:`Window.fresh`)."""


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    label: str
    seconds: int
    buckets: int
    fresh: float
    """Seconds its figures are served without a refresh."""

    @property
    def width(self) -> float:
        return self.seconds / self.buckets



WINDOWS = {
    "hour": Window("hour", "Last hour", 3600, 12, FRESH),
    "day": Window("day", "Last 24 hours", 86_400, 24, 60.0),
    "week": Window("week", "Last 7 days", 7 * 86_400, 28, 300.0),
}


@dataclass(frozen=True, slots=True)
class Point:
    start: float
    total: int
    ok: int
    failed: int
    p50_ms: float | None
    p95_ms: float | None


@dataclass(frozen=True, slots=True)
class Series:
    kind: str
    points: list[Point]
    total: int
    ok: int
    failed: int
    p50_ms: float | None
    p95_ms: float | None

    @property
    def success_rate(self) -> float | None:
        """Successes among finished rows (pending ones are neither), or None if none."""
        done = self.ok + self.failed
        return None if done == 0 else self.ok / done


@dataclass(frozen=True, slots=True)
class Activity:
    window: Window
    start: float
    end: float
    series: dict[str, Series]
    computed_at: float


def percentile(histogram: Sequence[int], q: float) -> float | None:
    """The upper edge (ms) of the latency bucket holding quantile ``q`` (0..1); None if empty.
    The last bucket has no upper edge: its lower one is answered."""
    total = sum(histogram)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(histogram):
        seen += count
        if seen >= rank and count:
            edges = LATENCY_EDGES_MS
            return float(edges[index] if index < len(edges) else edges[-1])
    return float(LATENCY_EDGES_MS[-1])


def build_series(kind: str, cells: list[ActivityCell], start: float, window: Window) -> Series:
    width = window.width
    per_bucket = [[0] * (len(LATENCY_EDGES_MS) + 1) for _ in range(window.buckets)]
    totals = [[0, 0, 0] for _ in range(window.buckets)]
    for cell in cells:
        if not 0 <= cell.bucket < window.buckets:
            continue
        row = totals[cell.bucket]
        row[0] += cell.total
        row[1] += cell.ok
        row[2] += cell.failed
        if cell.latency_bucket >= 0:
            per_bucket[cell.bucket][cell.latency_bucket] += cell.total
    points = [
        Point(
            start=start + i * width,
            total=totals[i][0],
            ok=totals[i][1],
            failed=totals[i][2],
            p50_ms=percentile(per_bucket[i], 0.50),
            p95_ms=percentile(per_bucket[i], 0.95),
        )
        for i in range(window.buckets)
    ]
    overall = [sum(h[j] for h in per_bucket) for j in range(len(LATENCY_EDGES_MS) + 1)]
    return Series(
        kind=kind,
        points=points,
        total=sum(t[0] for t in totals),
        ok=sum(t[1] for t in totals),
        failed=sum(t[2] for t in totals),
        p50_ms=percentile(overall, 0.50),
        p95_ms=percentile(overall, 0.95),
    )


def read_activity(db: Database, window: Window, now: float) -> Activity:
    # Buckets end on a multiple of their width, so the chart does not shift with every second.
    end = (now // window.width + 1) * window.width
    start = end - window.seconds
    series = {}
    with db.read() as conn:
        for kind in KINDS:
            cells = activity(conn, kind, start, end, window.width)
            series[kind] = build_series(kind, cells, start, window)
    return Activity(window=window, start=start, end=end, series=series, computed_at=now)


class ActivityCache:
    """Per-window figures, refreshed in the background once older than ``fresh`` seconds."""

    def __init__(
        self, db: Database, *, fresh: float | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.db = db
        self.fresh = fresh
        self.clock = clock
        self._found: dict[str, Activity] = {}
        self._refreshing: dict[str, asyncio.Task[Activity]] = {}

    def peek(self, window: Window) -> Activity | None:
        """The figures at hand (maybe stale), starting a refresh when they are stale; never
        waits. With none at hand it starts nothing: the page's placeholder asks :meth:`get`,
        so a page that nobody looks at further (a test, a link checker) leaves no work
        running behind it."""
        found = self._found.get(window.name)
        if found is not None and self.clock() - found.computed_at >= self._fresh(window):
            self._start(window)
        return found

    def pending(self, window: Window) -> asyncio.Task[Activity] | None:
        """The refresh of ``window`` under way, if any (tests await it)."""
        return self._refreshing.get(window.name)

    def _fresh(self, window: Window) -> float:
        return self.fresh if self.fresh is not None else window.fresh

    def _start(self, window: Window) -> asyncio.Task[Activity]:
        task = self._refreshing.get(window.name)
        if task is None:
            task = asyncio.ensure_future(self._refresh(window))
            task.add_done_callback(_retrieve)
            self._refreshing[window.name] = task
        return task

    async def get(self, window: Window) -> Activity:
        found = self._found.get(window.name)
        if found is not None and self.clock() - found.computed_at < self._fresh(window):
            return found
        task = self._start(window)
        if found is not None:
            return found  # stale but quick; the refresh lands for the next request
        return await asyncio.shield(task)

    async def _refresh(self, window: Window) -> Activity:
        try:
            fresh = await run_in_threadpool(read_activity, self.db, window, self.clock())
            self._found[window.name] = fresh
            return fresh
        finally:
            with contextlib.suppress(KeyError):
                del self._refreshing[window.name]


def _retrieve(task: asyncio.Task[Activity]) -> None:
    """A background refresh that failed (the database away) is retried by the next request;
    the request that waits on it sees the error, nobody else needs to."""
    if not task.cancelled():
        task.exception()
