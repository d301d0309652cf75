"""Automations as the API and the CLI change and read them; each call is one transaction (a
delete of many enrollments, one per batch).

Saving parses the whole definition (``definition.parse_definition``: a 422 naming the place)
and checks that every template and list it names exists (a 422 naming the step). An edit keeps
enrollments on the step with the same id; those on a step that is gone end ``step_removed``
in the edit's transaction, each with its ``automation.exited``. Every change drops this
process's compiled programs once committed (other processes follow the config version).
This module never builds SQL (``store/automations.py``, ``enrollment_reads.py`` and
``automation_removal.py`` do) and never runs a step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from hookhub.automation import events
from hookhub.automation.definition import Definition, Program, parse_definition
from hookhub.automation.enroll import end_enrollments, enroll
from hookhub.automation.registry import AutomationRegistry, compile_automation
from hookhub.automation.views import (
    automation_to_api,
    enrollment_to_api,
    journey_item,
    step_order,
)
from hookhub.clock import SYSTEM_CLOCK, Clock
from hookhub.core.contacts import parse_ref
from hookhub.crm.operations import CrmTx
from hookhub.errors import Conflict, NotFound, ValidationFailed
from hookhub.outbound.outbox import Outbox
from hookhub.records.automations import Automation
from hookhub.store.automation_removal import delete_owned_endpoints, end_active_batch
from hookhub.store.automations import AutomationStore
from hookhub.store.database import Database
from hookhub.store.email_templates import EmailTemplateStore
from hookhub.store.enrollment_reads import (
    automation_tally,
    contact_enrollments,
    enrollment_page,
    get_enrollment,
    step_logs,
)
from hookhub.store.enrollments import Ended, EnrollmentStore

FIELDS = ("name", "enabled", "trigger", "filter", "reentry", "exit_on_unsubscribe", "steps")
NOT_NULL = ("name", "enabled", "trigger", "reentry", "exit_on_unsubscribe", "steps")
END_BATCH = 500
"""Enrollments ended per statement (and, when deleting, per transaction)."""


def _missing(automation_id: int) -> NotFound:
    return NotFound(f"No automation {automation_id}.", details={"automation_id": automation_id})


def _require(store: AutomationStore, automation_id: int, *, lock: bool = False) -> Automation:
    found = store.get(automation_id, lock=lock)
    if found is None:
        raise _missing(automation_id)
    return found


def _stored_fields(definition: Definition, body: Mapping[str, Any]) -> dict[str, Any]:
    """The normalized definition as stored: steps with their ids, the trigger as parsed."""
    raw_filter = body.get("filter")
    return {
        "name": definition.name,
        "trigger": definition.trigger.to_json(),
        "filter": raw_filter if isinstance(raw_filter, str) else None,
        "reentry": definition.reentry,
        "exit_on_unsubscribe": definition.exit_on_unsubscribe,
        "steps": definition.steps_json,
    }


def _check_enabled(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationFailed("enabled: must be true or false", details={"path": "enabled"})
    return value


class AutomationService:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        registry: AutomationRegistry,
        clock: Clock = SYSTEM_CLOCK,
        end_batch: int = END_BATCH,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.registry = registry
        self.clock = clock
        self.end_batch = end_batch

    @contextlib.contextmanager
    def _write(self) -> Iterator[CrmTx]:
        """A write transaction; the compiled programs are dropped once it commits."""
        with self.db.write() as conn:
            yield CrmTx(
                conn, self.outbox.writer(conn), datetime.fromtimestamp(self.clock.now(), UTC)
            )
        self.registry.invalidate()

    @contextlib.contextmanager
    def _read(self) -> Iterator[CrmTx]:
        with self.db.read() as conn:
            yield CrmTx(
                conn, self.outbox.writer(conn), datetime.fromtimestamp(self.clock.now(), UTC)
            )

    # -- definitions --------------------------------------------------------------------------

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``body``: name, trigger, steps and the optional filter, reentry,
        exit_on_unsubscribe, enabled (POST /automations)."""
        definition = parse_definition(body)
        fields = _stored_fields(definition, body)
        fields["enabled"] = _check_enabled(body.get("enabled", True))
        with self._write() as tx:
            _check_references(tx, definition)
            created = AutomationStore(tx.conn).create(fields, tx.now)
        return automation_to_api(created)

    def get(self, automation_id: int) -> dict[str, Any]:
        """The automation with its counts: enrollments by status, and per step."""
        with self._read() as tx:
            automation = _require(AutomationStore(tx.conn), automation_id)
            tally = automation_tally(tx.conn, automation_id)
        compiled = compile_automation(automation)
        program = compiled.definition.program if compiled is not None else None
        return automation_to_api(automation, tally, program)

    def page(self, *, after_id: int | None, limit: int) -> list[Automation]:
        with self._read() as tx:
            return AutomationStore(tx.conn).page(after=after_id, limit=limit)

    def update(self, automation_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH: the fields given replace the automation's; the result is validated whole.
        ``enabled`` false holds its enrollments where they are, true lets them go on."""
        for key in NOT_NULL:
            if key in changes and changes[key] is None:
                raise ValidationFailed(f"{key}: cannot be null", details={"path": key})
        unknown = set(changes) - set(FIELDS)
        if unknown:
            raise ValidationFailed(f"unknown fields {sorted(unknown)}", details={"path": "body"})
        with self._write() as tx:
            store = AutomationStore(tx.conn)
            current = _require(store, automation_id, lock=True)
            fields: dict[str, Any] = {}
            definition_changes = {k: v for k, v in changes.items() if k != "enabled"}
            if definition_changes:
                body = {**current.definition_body(), **definition_changes}
                definition = parse_definition(body)
                _check_references(tx, definition)
                fields.update(_stored_fields(definition, body))
                if "steps" in definition_changes:
                    self._end_removed_steps(tx, current, set(definition.program.steps))
            if "enabled" in changes:
                fields["enabled"] = _check_enabled(changes["enabled"])
                if fields["enabled"] and not current.enabled:
                    EnrollmentStore(tx.conn).due_now()  # the held enrollments may be due
            updated = store.update(automation_id, fields, tx.now) if fields else current
            assert updated is not None
            tally = automation_tally(tx.conn, automation_id)
        compiled = compile_automation(updated)
        return automation_to_api(updated, tally, compiled.definition.program if compiled else None)

    def set_enabled(self, automation_id: int, enabled: bool) -> dict[str, Any]:
        return self.update(automation_id, {"enabled": enabled})

    def delete(self, automation_id: int) -> None:
        """End its active enrollments (reason ``removed``, a batch per transaction), then delete
        it with its enrollments, their logs and its webhook steps' hidden endpoints."""
        first = True
        while True:
            with self._write() as tx:
                store = AutomationStore(tx.conn)
                automation = store.get(automation_id, lock=True)
                if automation is None:
                    if first:
                        raise _missing(automation_id)
                    return  # deleted meanwhile by someone else
                first = False
                ended = self._end_batch(tx, automation, reason="removed")
                if ended < self.end_batch:
                    delete_owned_endpoints(tx.conn, automation_id)
                    store.delete(automation_id)
                    return

    def _end_removed_steps(self, tx: CrmTx, automation: Automation, kept: set[str]) -> None:
        while self._end_batch(tx, automation, reason="step_removed", keep_step_ids=kept) == (
            self.end_batch
        ):
            pass

    def _end_batch(
        self,
        tx: CrmTx,
        automation: Automation,
        *,
        reason: str,
        keep_step_ids: set[str] | None = None,
    ) -> int:
        ended = end_active_batch(
            tx.conn,
            automation.id,
            reason=reason,
            now=tx.now.timestamp(),
            limit=self.end_batch,
            keep_step_ids=keep_step_ids,
        )
        tx.outbox.write(
            [
                events.exited(
                    automation_id=automation.id,
                    automation_name=automation.name,
                    enrollment_id=e.id,
                    contact_id=e.contact_id,
                    email=e.email,
                    reason=reason,
                    step_id=e.step_id,
                    at=tx.now,
                )
                for e in ended
            ]
        )
        return len(ended)

    # -- enrollments --------------------------------------------------------------------------

    def enrollments(
        self,
        automation_id: int,
        *,
        contact: str | int | None,
        status: str | None,
        after_id: int | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        with self._read() as tx:
            automation = _require(AutomationStore(tx.conn), automation_id)
            contact_id = _contact_id(tx, contact) if contact is not None else None
            rows = enrollment_page(
                tx.conn,
                automation_id,
                contact_id=contact_id,
                status=status,
                after_id=after_id,
                limit=limit,
            )
        program = self._program(automation)
        return [enrollment_to_api(r.enrollment, r.email, program) for r in rows]

    def add_contact(self, automation_id: int, contact: str | int) -> dict[str, Any]:
        """Enrol a contact by hand (trigger ``manual``); the automation's ``filter`` does not
        apply, its ``reentry`` does (a 409 when it keeps the contact out)."""
        with self._write() as tx:
            # Locked (PostgreSQL): a delete under way waits, or is done and this is a 404.
            automation = _require(AutomationStore(tx.conn), automation_id, lock=True)
            found = tx.find_contact(contact)
            compiled = self.registry.compiled(tx.conn, automation_id, automation.version)
            if compiled is None:
                raise Conflict(
                    f"Automation {automation_id} no longer compiles; save it again first.",
                    details={"automation_id": automation_id},
                )
            enrollment_id = enroll(
                tx,
                compiled,
                found,
                trigger_type="manual",
                trigger={"source": "api"},
                apply_filter=False,
            )
            if enrollment_id is None:
                raise _kept_out(automation, found.id, found.email)
            row = get_enrollment(tx.conn, enrollment_id)
            assert row is not None
        return enrollment_to_api(row.enrollment, row.email, compiled.definition.program)

    def remove_enrollment(self, automation_id: int, enrollment_id: int) -> None:
        """End one active enrollment with reason ``removed`` (and its ``automation.exited``)."""
        with self._write() as tx:
            _require(AutomationStore(tx.conn), automation_id)
            row = get_enrollment(tx.conn, enrollment_id)
            if row is None or row.enrollment.automation_id != automation_id:
                raise NotFound(
                    f"No enrollment {enrollment_id} in automation {automation_id}.",
                    details={"automation_id": automation_id, "enrollment_id": enrollment_id},
                )
            ended: list[Ended] = []
            if row.enrollment.status == "active":
                ended = end_enrollments(
                    tx,
                    contact_id=row.enrollment.contact_id,
                    email=row.email or "",
                    reason="removed",
                    enrollment_id=enrollment_id,
                )
            if not ended:
                raise Conflict(
                    f"Enrollment {enrollment_id} has already ended"
                    f" ({row.enrollment.exit_reason or row.enrollment.status}); only an active"
                    " enrollment can be removed.",
                    details={"enrollment_id": enrollment_id, "status": row.enrollment.status},
                )

    # -- a contact's journey ------------------------------------------------------------------

    def journey(
        self, contact: str | int, *, before_id: int | None, limit: int
    ) -> list[dict[str, Any]]:
        """The contact's enrollments, newest first: where each is, what its steps did and
        when, what comes next and when."""
        with self._read() as tx:
            found = tx.find_contact(contact)
            items = contact_enrollments(tx.conn, found.id, before_id=before_id, limit=limit)
            logs = step_logs(tx.conn, [e.id for e in items])
            store = AutomationStore(tx.conn)
            automations = {i: store.get(i) for i in sorted({e.automation_id for e in items})}
        programs = {i: self._program(a) for i, a in automations.items()}
        return [
            journey_item(
                e, automations.get(e.automation_id), programs.get(e.automation_id), logs[e.id]
            )
            for e in items
        ]

    def _program(self, automation: Automation | None) -> Program | None:
        """The automation's program as stored now (from this process's cache when current)."""
        if automation is None:
            return None
        cached = self.registry.index().by_id.get(automation.id)
        if cached is not None and cached.automation.version == automation.version:
            return cached.definition.program
        compiled = compile_automation(automation)
        return compiled.definition.program if compiled is not None else None


def _check_references(tx: CrmTx, definition: Definition) -> None:
    """Every template and list the definition names exists; else a 422 naming the step."""
    templates = EmailTemplateStore(tx.conn)
    missing_templates = {t for t in definition.template_ids if templates.get(t) is None}
    found_lists = set(tx.lists.names(sorted(definition.list_ids)))
    missing_lists = definition.list_ids - found_lists
    if not missing_templates and not missing_lists:
        return
    trigger_list = definition.trigger.list_id
    if trigger_list is not None and trigger_list in missing_lists:
        raise ValidationFailed(
            f"trigger.list_id: no list {trigger_list}",
            details={"path": "trigger.list_id", "list_id": trigger_list},
        )
    program = definition.program
    for step_id in step_order(definition.steps_json):
        step = program.steps[step_id]
        if step.kind == "send_email" and step.spec.template_id in missing_templates:
            where = f"{step.path}.send_email.template_id"
            raise ValidationFailed(
                f"{where}: no email template {step.spec.template_id} (step {step.id!r})",
                details={"path": where, "step_id": step.id, "template_id": step.spec.template_id},
            )
        if step.kind in ("add_to_list", "remove_from_list") and step.spec in missing_lists:
            where = f"{step.path}.{step.kind}"
            raise ValidationFailed(
                f"{where}: no list {step.spec} (step {step.id!r})",
                details={"path": where, "step_id": step.id, "list_id": step.spec},
            )
    raise AssertionError("a missing template or list that no step names")  # pragma: no cover


def _contact_id(tx: CrmTx, ref: str | int) -> int:
    """A contact filter: an id as given (its enrollments outlive a deleted contact), an email
    looked up (404 when no contact has it)."""
    kind, value = parse_ref(ref)
    return int(value) if kind == "id" else tx.find_contact(ref).id


def _kept_out(automation: Automation, contact_id: int, email: str) -> Conflict:
    why = {
        "never": "its reentry is 'never' and the contact has been enrolled before",
        "after_exit": "its reentry is 'after_exit' and the contact is enrolled now",
    }.get(automation.reentry, "an enrollment for this contact already exists")
    return Conflict(
        f"Contact {email} cannot enter automation {automation.id}: {why}.",
        details={
            "automation_id": automation.id,
            "contact_id": contact_id,
            "reentry": automation.reentry,
        },
    )
