"""The automation loop as ``serve`` and ``worker`` run it: woken by commits that make
enrollments due (in this process, and by NOTIFY from others on PostgreSQL), by its timers
otherwise; leases given back when it stops."""

from __future__ import annotations

import asyncio

from hookhub.clock import SystemClock
from hookhub.services import build_automation_loop, build_services
from hookhub.store.enrollments import EnrollmentStore
from tests.conftest import make_settings
from tests.support.automation_engine import Automations
from tests.support.delivery import create_contact, eventually, tuned_services


async def test_the_loop_runs_enrollments_as_they_fall_due(db_url: str) -> None:
    with tuned_services(db_url) as services:
        loop = build_automation_loop(services)
        loop.max_sleep = 60.0  # only commits, NOTIFY and due times wake it
        auto = Automations(services, SystemClock())
        automation = auto.create(
            [
                {"id": "hello", "track_event": {"name": "hello"}},
                {"id": "pause", "wait": 1},
                {"id": "bye", "track_event": {"name": "bye"}},
            ]
        )
        task = asyncio.create_task(loop.run())
        try:
            contact_id = create_contact(services, "ada@example.com")
            enrollment_id = await asyncio.to_thread(auto.enroll, automation, contact_id)
            # Woken by the commit, then by its own timer one second later.
            await eventually(lambda: auto.enrollment(enrollment_id).status == "completed")
            assert [s for s, _, _ in auto.log(enrollment_id)] == ["hello", "pause", "bye"]
            assert loop.steps == 3

            if services.db.backend == "postgresql":
                # Another process's commit wakes this one through NOTIFY.
                other = build_services(make_settings(db_url))
                try:
                    late = Automations(other, SystemClock())
                    bob = create_contact(services, "bob@example.com")
                    second = await asyncio.to_thread(late.enroll, automation, bob)
                finally:
                    other.close()
                await eventually(lambda: auto.enrollment(second).step_id == "pause", timeout=10)
        finally:
            loop.stop()
            await asyncio.wait_for(task, 20)
        assert loop.heartbeat.errors == {}


async def test_stopping_gives_back_the_leases_it_holds(db_url: str) -> None:
    with tuned_services(db_url) as services:
        loop = build_automation_loop(services)
        auto = Automations(services, SystemClock())
        automation = auto.create([{"id": "hello", "track_event": {"name": "hello"}}])
        contact_id = create_contact(services, "ada@example.com")
        enrollment_id = auto.enroll(automation, contact_id)
        # Leased by this loop's worker, as if it had claimed and not yet run the batch.
        claimed = loop.engine.claim()
        assert [c.id for c in claimed] == [enrollment_id]
        task = asyncio.create_task(loop.run())
        await asyncio.sleep(0)  # let it start: run() begins by clearing any earlier stop
        loop.stop()
        await asyncio.wait_for(task, 20)
        with services.db.read() as conn:
            left = EnrollmentStore(conn).get(enrollment_id)
        assert left is not None
        assert left.lease_owner is None
