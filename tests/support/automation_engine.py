"""The automation engine driven by a test: automations stored as the API stores them,
contacts enrolled as triggers enrol them, the engine run with a clock the test holds, and
enrollments, step logs and outbox messages read back.

    auto = Automations(services, FakeClock())
    automation = auto.create([{"id": "hello", "add_to_list": 3}, {"wait": "2d"}])
    enrollment_id = auto.enroll(automation, contact_id)
    auto.engine.run_due()
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select

from hookhub.automation.definition import parse_definition
from hookhub.automation.engine import AutomationEngine
from hookhub.automation.enroll import enroll
from hookhub.clock import Clock
from hookhub.crm.operations import CrmTx
from hookhub.records.automations import Automation, Enrollment
from hookhub.services import Services
from hookhub.store.automations import AutomationStore
from hookhub.store.contacts import ContactStore
from hookhub.store.enrollments import EnrollmentStore
from hookhub.store.schema import messages
from hookhub.store.schema_automation import automation_step_log


def normalized(steps: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """Stored fields of a definition (what the API would store)."""
    body = {"name": "test automation", "trigger": {"type": "manual"}, "steps": steps, **fields}
    definition = parse_definition(body)
    return {
        "name": definition.name,
        "trigger": definition.trigger.to_json(),
        "filter": body.get("filter"),
        "reentry": definition.reentry,
        "exit_on_unsubscribe": definition.exit_on_unsubscribe,
        "steps": definition.steps_json,
        "enabled": body.get("enabled", True),
    }


class Automations:
    def __init__(self, services: Services, clock: Clock, **engine: Any) -> None:
        self.services = services
        self.clock = clock
        self.engine = self.make_engine(**engine)

    def make_engine(self, **options: Any) -> AutomationEngine:
        options.setdefault("worker_id", "test")
        return AutomationEngine(
            self.services.db,
            self.services.outbox,
            self.services.automation_registry,
            self.clock,
            email_from=self.services.settings.email_from,
            **options,
        )

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)

    def create(self, steps: list[dict[str, Any]], **fields: Any) -> Automation:
        with self.services.db.write() as conn:
            return AutomationStore(conn).create(normalized(steps, **fields), self.now())

    def update(self, automation: Automation, **fields: Any) -> Automation:
        with self.services.db.write() as conn:
            updated = AutomationStore(conn).update(automation.id, fields, self.now())
        assert updated is not None
        self.services.automation_registry.invalidate()
        return updated

    def edit_steps(self, automation: Automation, steps: list[dict[str, Any]]) -> Automation:
        return self.update(automation, steps=normalized(steps)["steps"])

    def enroll(
        self, automation: Automation, contact_id: int, trigger: dict[str, Any] | None = None
    ) -> int:
        registry = self.services.automation_registry
        with self.services.db.write() as conn:
            tx = CrmTx(conn, self.services.outbox.writer(conn), self.now())
            current = AutomationStore(conn).get(automation.id)
            assert current is not None
            compiled = registry.compiled(conn, automation.id, current.version)
            assert compiled is not None
            contact = ContactStore(conn).get(contact_id)
            assert contact is not None
            ContactStore(conn).attach_list_ids([contact])
            enrollment_id = enroll(
                tx, compiled, contact, trigger_type="manual", trigger=trigger or {}
            )
        assert enrollment_id is not None
        return enrollment_id

    def enrollment(self, enrollment_id: int) -> Enrollment:
        with self.services.db.read() as conn:
            found = EnrollmentStore(conn).get(enrollment_id)
        assert found is not None
        return found

    def log(self, enrollment_id: int) -> list[tuple[str, str, Any]]:
        """(step id, outcome, detail) of each step the enrollment ran, in order."""
        log = automation_step_log.c
        query = (
            select(log.step_id, log.outcome, log.detail)
            .where(log.enrollment_id == enrollment_id)
            .order_by(log.id)
        )
        with self.services.db.read() as conn:
            rows = conn.execute(query).all()
        return [(r.step_id, r.outcome, orjson.loads(r.detail) if r.detail else None) for r in rows]

    def messages(self, event_type: str) -> list[dict[str, Any]]:
        """The ``data`` of every outbox message of ``event_type``, oldest first."""
        query = select(messages.c.payload).where(messages.c.type == event_type)
        with self.services.db.read() as conn:
            rows = conn.execute(query.order_by(messages.c.id)).scalars().all()
        return [orjson.loads(payload)["data"] for payload in rows]

    def contact(self, contact_id: int) -> Any:
        with self.services.db.read() as conn:
            store = ContactStore(conn)
            found = store.get(contact_id)
            if found is not None:
                store.attach_list_ids([found])
        return found
