"""Time in automations: durations (``30m``, ``2d``), times of day in a time zone, and a date
trigger's occurrences.

Pure: every "now" is handed in as epoch seconds and every answer is epoch seconds; nothing here
reads a clock. Local times go through ``zoneinfo`` so that waits across a daylight-saving change
land on the wall-clock time asked for: a local time that does not exist (the spring gap) is
taken as the first instant after the gap, an ambiguous one (the autumn overlap) as the first.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hookhub.errors import ValidationFailed

MAX_DURATION = 3 * 366 * 86400.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d{1,7})\s*([smhdw])\s*$")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def path_error(where: str, message: str) -> ValidationFailed:
    """A 422 naming the place in the definition (``steps[2].wait``)."""
    return ValidationFailed(f"{where}: {message}", details={"path": where})


def parse_duration(value: Any, where: str) -> float:
    """Seconds in ``value``: ``"45s"``, ``"30m"``, ``"2h"``, ``"2d"``, ``"1w"`` or a number of
    seconds; at least one second, at most about three years."""
    seconds: float
    if isinstance(value, bool):
        raise path_error(where, "must be a duration such as '30m' or '2d'")
    if isinstance(value, int | float):
        # An int past a float's range (JSON allows 1e400 written out) is simply too long.
        seconds = float(value) if abs(value) <= MAX_DURATION else MAX_DURATION + 1
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(int(match.group(1)) * _UNITS[match.group(2)])
    else:
        raise path_error(where, "must be a duration such as '30m', '2h', '2d' or '1w'")
    if not 1 <= seconds <= MAX_DURATION:
        raise path_error(where, "must be between 1 second and 3 years")
    return seconds


def parse_time_of_day(value: Any, where: str) -> time:
    if not isinstance(value, str) or not (match := _TIME.match(value)):
        raise path_error(where, "must be a time of day HH:MM (24-hour)")
    return time(int(match.group(1)), int(match.group(2)))


def parse_timezone(value: Any, where: str) -> ZoneInfo:
    if not isinstance(value, str) or not value or len(value) > 64 or "\x00" in value:
        raise path_error(where, "must be an IANA time zone such as 'Europe/Rome'")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise path_error(where, f"{value!r} is not a known time zone") from exc


def parse_weekdays(value: Any, where: str) -> frozenset[int]:
    """``["mon", "fri"]`` as weekday numbers (Monday 0); all seven when ``value`` is None."""
    if value is None:
        return frozenset(range(7))
    if not isinstance(value, list) or not value or len(value) > 7:
        raise path_error(where, "must be a non-empty list of weekdays ('mon' ... 'sun')")
    days: set[int] = set()
    for day in value:
        if not isinstance(day, str) or day.lower() not in WEEKDAYS:
            raise path_error(where, f"{day!r} is not a weekday ('mon' ... 'sun')")
        days.add(WEEKDAYS.index(day.lower()))
    return frozenset(days)


def local_instant(day: date, at: time, zone: ZoneInfo) -> float:
    """Epoch seconds of ``at`` on ``day`` in ``zone`` (a time in the spring gap: the gap's end,
    the instant the clocks jump)."""
    local = datetime.combine(day, at, tzinfo=zone)
    instant = local.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None):
        return instant.timestamp()
    # It does not exist. Read with the offset from before the gap (fold=0) it lands after the
    # jump, with the one from after it (fold=1) before: the jump is between, found to the
    # second (zones change offset on whole seconds).
    after = instant.astimezone(zone).utcoffset()
    low = int(local.replace(fold=1).astimezone(UTC).timestamp())
    high = int(instant.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == after:
            high = middle
        else:
            low = middle
    return float(high)


def next_time_of_day(now: float, at: time, zone: ZoneInfo, days: frozenset[int]) -> float:
    """The first instant at or after ``now`` when it is ``at`` in ``zone`` on one of ``days``."""
    today = datetime.fromtimestamp(now, zone).date()
    for offset in range(8):
        day = today + timedelta(days=offset)
        if day.weekday() not in days:
            continue
        instant = local_instant(day, at, zone)
        if instant >= now:
            return instant
    raise AssertionError("a week always holds one of the given weekdays")  # pragma: no cover


def parse_date_value(value: Any) -> date | None:
    """A contact's date attribute as a date (``YYYY-MM-DD``, or a datetime's date part); None
    when it holds no date."""
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def date_occurrence(value: date, *, offset_days: int, yearly: bool, today: date) -> date | None:
    """The day a date trigger fires for ``value`` that is nearest at or after ``today``'s year
    (``yearly``: every year, e.g. a birthday; otherwise once, e.g. a renewal date); None when a
    one-off date has passed. 29 February fires on 28 February in other years."""
    if not yearly:
        return value + timedelta(days=offset_days)
    for year in (today.year - 1, today.year, today.year + 1):
        try:
            anniversary = value.replace(year=year)
        except ValueError:  # 29 February
            anniversary = date(year, 2, 28)
        fires = anniversary + timedelta(days=offset_days)
        if fires >= today:
            return fires
    return None  # pragma: no cover - the next year always comes after today
