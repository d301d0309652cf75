"""Automation retention on each backend: enrollments finished longer ago than
HOOKHUB_RETENTION_AUTOMATIONS go with their step logs, in batches; recent ones and active
ones (however old) stay; ``hookhub purge --automations`` does the same from the command line."""

from __future__ import annotations

from sqlalchemy import Table, func, select
from typer.testing import CliRunner

from hookhub import cli
from hookhub.clock import FakeClock
from hookhub.retention import PurgeCounts, RetentionService
from hookhub.services import Services
from hookhub.store.schema_automation import automation_enrollments, automation_step_log
from tests.conftest import SECRET_KEY
from tests.support.automation_engine import Automations
from tests.support.delivery import create_contact, tuned_services

DAY = 86400.0


def _rows(services: Services, table: Table) -> int:
    with services.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_old_finished_enrollments_go_with_their_logs(db_url: str) -> None:
    with tuned_services(db_url, retention_batch=2) as services:
        clock = FakeClock()
        auto = Automations(services, clock)
        done = auto.create(
            [{"id": "a", "track_event": {"name": "a"}}, {"id": "b", "exit": True}], reentry="always"
        )
        waiting = auto.create([{"id": "pause", "wait": "365d"}])
        contact_id = create_contact(services, "ada@example.com")
        old = [auto.enroll(done, contact_id) for _ in range(3)]
        active = auto.enroll(waiting, contact_id)
        auto.engine.run_due()
        clock.advance(50 * DAY)
        recent = auto.enroll(done, contact_id)
        auto.engine.run_due()
        clock.advance(41 * DAY)  # the first three finished 91 days ago, the fourth 41

        service = RetentionService(services.db, services.settings, clock=clock.now)
        only = {"requests": False, "messages": False, "emails": False}
        dry = service.purge(**only, dry_run=True)
        assert (dry.enrollments, dry.step_logs) == (3, 6)
        assert _rows(services, automation_enrollments) == 5
        counts = service.purge(**only)
        assert counts == dry
        assert service.purge(**only) == PurgeCounts()

        with services.db.read() as conn:
            left = set(conn.execute(select(automation_enrollments.c.id)).scalars())
        assert left == {active, recent}
        assert not left & set(old)
        assert _rows(services, automation_step_log) == 2  # the recent run's two steps


def test_purge_automations_from_the_command_line(db_url: str) -> None:
    with tuned_services(db_url) as services:
        auto = Automations(services, FakeClock(1_000_000.0))  # finished long ago
        automation = auto.create([{"id": "a", "track_event": {"name": "a"}}])
        auto.enroll(automation, create_contact(services, "ada@example.com"))
        auto.engine.run_due()
    runner = CliRunner(env={"HOOKHUB_SECRET_KEY": SECRET_KEY, "COLUMNS": "200", "NO_COLOR": "1"})
    args = ["purge", "--automations", "--database-url", db_url]
    dry = runner.invoke(cli.app, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "enrollments: 1" in dry.output
    assert "step_logs: 1" in dry.output
    assert "emails" not in dry.output
    done = runner.invoke(cli.app, args)
    assert done.exit_code == 0, done.output
    assert "enrollments: 1" in done.output
    with tuned_services(db_url) as services:
        assert _rows(services, automation_enrollments) == 0
