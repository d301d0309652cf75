"""Date triggers on both backends, with the clock moved instead of waited for: birthdays every
year (29 February on the 28th in other years), a renewal with an offset, the time of day in a
time zone, once per occurrence across passes, restarts and workers, nothing for occurrences
more than a day old, and the loop under supervision."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from hookhub.automation.date_triggers import DateTriggerLoop, DateTriggerScan
from hookhub.clock import FakeClock
from hookhub.services import Services
from tests.support.automations import enrollments_of, make_automation, update_automation


def _at(text: str) -> float:
    return datetime.fromisoformat(text).astimezone(UTC).timestamp()


def _scan(services: Services, clock: FakeClock, **options: Any) -> DateTriggerScan:
    return DateTriggerScan(
        services.db, services.outbox, services.automation_registry, clock, **options
    )


def _contact(client: Any, email: str, **attributes: Any) -> int:
    response = client.post("/api/v1/contacts", json={"email": email, "attributes": attributes})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _birthdays(services: Services, **trigger: Any) -> int:
    return make_automation(
        services,
        {
            "trigger": {"type": "date", "attribute": "birthday", "yearly": True, **trigger},
            "reentry": "always",
        },
    )


def _enrolled(services: Services, automation: int) -> list[tuple[int, str]]:
    return [(e["contact_id"], e["entry_key"]) for e in enrollments_of(services, automation)]


def test_a_birthday_enrols_at_its_time_once(services: Services, client: Any) -> None:
    automation = _birthdays(services, at="09:00", timezone="Europe/Rome")
    ada = _contact(client, "ada@example.com", BIRTHDAY="1990-05-03")
    bob = _contact(client, "bob@example.com", BIRTHDAY="1985-05-04T10:30:00Z")
    _contact(client, "eve@example.com", BIRTHDAY="someday 05-03")
    _contact(client, "carl@example.com", NOTE='"BIRTHDAY":"1990-05-03"')
    _contact(client, "dan@example.com")
    clock = FakeClock(_at("2026-05-03T08:59:59+02:00"))
    scan = _scan(services, clock)
    assert scan.run_once() == 0
    clock.set(_at("2026-05-03T09:00:00+02:00"))
    assert scan.run_once() == 1
    [enrollment] = enrollments_of(services, automation)
    assert enrollment["contact_id"] == ada
    assert enrollment["entry_key"] == "2026-05-03"
    assert enrollment["trigger"] == {
        "type": "date",
        "data": {"attribute": "BIRTHDAY", "value": "1990-05-03", "date": "2026-05-03"},
    }
    clock.advance(3600)
    assert scan.run_once() == 0  # scanned already (and entered: once per occurrence)
    assert _scan(services, clock).run_once() == 0  # a restart or another worker
    clock.set(_at("2026-05-04T09:00:00+02:00"))
    assert scan.run_once() == 1
    assert _enrolled(services, automation) == [(ada, "2026-05-03"), (bob, "2026-05-04")]
    clock.set(_at("2027-05-03T09:30:00+02:00"))
    assert scan.run_once() == 1
    assert _enrolled(services, automation)[-1] == (ada, "2027-05-03")


def test_occurrences_older_than_a_day_are_not_enrolled(services: Services, client: Any) -> None:
    _contact(client, "ada@example.com", BIRTHDAY="1990-05-03")
    _contact(client, "bob@example.com", BIRTHDAY="1985-05-04")
    automation = _birthdays(services)  # 09:00 UTC
    clock = FakeClock(_at("2026-05-05T08:00:00+00:00"))
    assert _scan(services, clock).run_once() == 1
    assert [key for _, key in _enrolled(services, automation)] == ["2026-05-04"]


def test_a_renewal_with_an_offset_fires_once(services: Services, client: Any) -> None:
    automation = make_automation(
        services,
        {
            "trigger": {
                "type": "date",
                "attribute": "RENEWAL_DATE",
                "offset_days": -7,
                "at": "10:00",
            },
            "reentry": "always",
        },
    )
    soon = _contact(client, "soon@example.com", RENEWAL_DATE="2026-06-10")
    _contact(client, "past@example.com", RENEWAL_DATE="2025-06-10")
    _contact(client, "later@example.com", RENEWAL_DATE="2026-06-11")
    # RENEWAL_DATE's "_" is no wildcard: this one must not be read as a match.
    _contact(client, "odd@example.com", RENEWALXDATE="2026-06-10")
    clock = FakeClock(_at("2026-06-03T10:00:00+00:00"))
    scan = _scan(services, clock)
    assert scan.run_once() == 1
    assert _enrolled(services, automation) == [(soon, "2026-06-03")]
    clock.set(_at("2027-06-03T10:00:00+00:00"))
    assert scan.run_once() == 0  # not yearly


def test_29_february_fires_on_the_28th_in_other_years(services: Services, client: Any) -> None:
    automation = _birthdays(services)
    leap = _contact(client, "leap@example.com", BIRTHDAY="2000-02-29")
    eve = _contact(client, "eve@example.com", BIRTHDAY="1999-02-28")
    clock = FakeClock(_at("2027-02-28T09:00:00+00:00"))
    scan = _scan(services, clock)
    assert scan.run_once() == 2
    assert sorted(_enrolled(services, automation)) == [
        (leap, "2027-02-28"),
        (eve, "2027-02-28"),
    ]
    clock.set(_at("2028-02-28T09:00:00+00:00"))
    assert scan.run_once() == 1
    clock.set(_at("2028-02-29T09:00:00+00:00"))
    assert scan.run_once() == 1
    assert sorted(_enrolled(services, automation)) == sorted(
        [(leap, "2027-02-28"), (eve, "2027-02-28"), (eve, "2028-02-28"), (leap, "2028-02-29")]
    )


def test_the_time_of_day_is_the_trigger_s_time_zone(services: Services, client: Any) -> None:
    automation = _birthdays(services, at="09:00", timezone="Pacific/Auckland")
    ada = _contact(client, "ada@example.com", BIRTHDAY="1990-05-03")
    # 09:00 on 3 May in Auckland (UTC+12) is 21:00 on 2 May in UTC.
    clock = FakeClock(_at("2026-05-02T20:59:00+00:00"))
    scan = _scan(services, clock)
    assert scan.run_once() == 0
    clock.set(_at("2026-05-02T21:00:00+00:00"))
    assert scan.run_once() == 1
    assert _enrolled(services, automation) == [(ada, "2026-05-03")]


def test_filter_disabled_and_late_values(services: Services, client: Any) -> None:
    automation = make_automation(
        services,
        {
            "trigger": {"type": "date", "attribute": "BIRTHDAY", "yearly": True},
            "filter": "contact.attributes.PLAN == 'pro' && trigger.date == '2026-05-03'",
        },
    )
    pro = _contact(client, "pro@example.com", BIRTHDAY="1990-05-03", PLAN="pro")
    _contact(client, "free@example.com", BIRTHDAY="1990-05-03", PLAN="free")
    clock = FakeClock(_at("2026-05-03T09:00:00+00:00"))
    scan = _scan(services, clock, rescan=300)
    assert scan.run_once() == 1
    assert _enrolled(services, automation) == [(pro, "2026-05-03")]
    # Set after the first scan: found by the next scan of the day.
    late = _contact(client, "late@example.com", BIRTHDAY="2001-05-03", PLAN="pro")
    clock.advance(299)
    assert scan.run_once() == 0
    clock.advance(2)
    assert scan.run_once() == 1
    assert _enrolled(services, automation)[-1] == (late, "2026-05-03")
    update_automation(services, automation, {"enabled": False})
    services.automation_registry.invalidate()
    _contact(client, "paused@example.com", BIRTHDAY="2001-05-03", PLAN="pro")
    clock.advance(301)
    assert scan.run_once() == 0


def test_small_windows_cover_every_contact(services: Services, client: Any) -> None:
    automation = _birthdays(services)
    ids = [
        _contact(client, f"c{n}@example.com", BIRTHDAY=f"19{60 + n}-05-0{3 + n % 2}")
        for n in range(9)
    ]
    clock = FakeClock(_at("2026-05-03T12:00:00+00:00"))
    assert _scan(services, clock, id_window=2).run_once() == 5
    assert sorted(c for c, _ in _enrolled(services, automation)) == ids[::2]


def test_the_loop_scans_and_stops(services: Services, client: Any) -> None:
    automation = _birthdays(services)
    ada = _contact(client, "ada@example.com", BIRTHDAY="1990-05-03")
    clock = FakeClock(_at("2026-05-03T12:00:00+00:00"))
    loop = DateTriggerLoop(_scan(services, clock), interval=3600)
    scanned = threading.Event()
    original = loop.scan.run_once

    def run_once(*args: Any) -> int:
        done = original(*args)
        scanned.set()
        return done

    loop.scan.run_once = run_once  # type: ignore[method-assign]

    async def main() -> None:
        task = asyncio.create_task(loop.run())
        assert await asyncio.to_thread(scanned.wait, 30)
        loop.stop()
        await asyncio.wait_for(task, 30)

    asyncio.run(main())
    assert _enrolled(services, automation) == [(ada, "2026-05-03")]
    assert loop.heartbeat.errors == {}


def test_a_failing_scan_is_retried_and_shown(services: Services) -> None:
    clock = FakeClock()
    loop = DateTriggerLoop(_scan(services, clock), interval=3600)
    failed = threading.Event()

    def explode(*_args: Any) -> int:
        failed.set()
        raise RuntimeError("boom")

    loop.scan.run_once = explode  # type: ignore[method-assign]

    async def main() -> None:
        task = asyncio.create_task(loop.run())
        assert await asyncio.to_thread(failed.wait, 30)
        await asyncio.sleep(0)  # let the loop note it
        while "scan" not in loop.heartbeat.errors:
            await asyncio.sleep(0.01)
        loop.stop()
        await asyncio.wait_for(task, 30)

    asyncio.run(main())
    assert "RuntimeError" in loop.heartbeat.errors["scan"]


@pytest.mark.parametrize(
    ("kind", "value"), [("date", "1990-05-03"), ("string", "1990-05-03T23:30:00+00:00")]
)
def test_date_typed_and_text_attributes_both_fire(
    services: Services, client: Any, kind: str, value: str
) -> None:
    response = client.post("/api/v1/attributes", json={"name": "BIRTHDAY", "type": kind})
    assert response.status_code == 201, response.text
    automation = _birthdays(services)
    ada = _contact(client, "ada@example.com", BIRTHDAY=value)
    clock = FakeClock(_at("2026-05-03T09:00:00+00:00"))
    assert _scan(services, clock).run_once() == 1
    assert _enrolled(services, automation) == [(ada, "2026-05-03")]


def test_two_workers_scanning_at_once_enrol_each_contact_once(
    services: Services, client: Any
) -> None:
    automation = _birthdays(services)
    with services.crm.transaction() as tx:
        for n in range(300):
            tx.create_contact(f"c{n}@example.com", attributes={"BIRTHDAY": "1990-05-03"})
    clock = FakeClock(_at("2026-05-03T09:00:00+00:00"))
    scans = [_scan(services, clock, id_window=50) for _ in range(2)]
    counts: list[int] = []
    errors: list[BaseException] = []

    def work(scan: DateTriggerScan) -> None:
        try:
            counts.append(scan.run_once())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(scan,)) for scan in scans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert sum(counts) == 300
    enrolled = _enrolled(services, automation)
    assert len(enrolled) == len(set(enrolled)) == 300
