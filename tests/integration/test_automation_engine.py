"""The automation step machine on both backends, with a fake clock: every step kind and
branch, waits, edits while enrolled, contacts changing under a wait, disabled automations,
failures that stay with their enrollment, and the lease."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from hookhub.clock import FakeClock
from hookhub.core.contacts import AttributeType
from hookhub.email.template_service import TemplateService
from hookhub.services import Services
from hookhub.store.contacts import ContactStore
from hookhub.store.enrollments import EnrollmentStore
from hookhub.store.schema import emails
from tests.support.automation_engine import Automations
from tests.support.delivery import create_contact
from tests.support.email import emails_of

DAY = 86400.0


@pytest.fixture
def auto(services: Services) -> Automations:
    return Automations(services, FakeClock())


def make_list(services: Services, name: str = "members") -> int:
    with services.crm.transaction() as crm:
        return crm.lists.create(name, crm.now).id


def make_template(services: Services) -> int:
    templates = TemplateService(services.crm, services.settings.base_url)
    created = templates.create(
        {"name": "hello", "subject": "Hi {{ params.name }}", "html": "<p>Hello</p>"}
    )
    return created.id


def automation_emails(services: Services, automation_id: int) -> list[Any]:
    query = select(emails.c.id).where(emails.c.automation_id == automation_id)
    with services.db.read() as conn:
        ids = list(conn.execute(query.order_by(emails.c.id)).scalars())
    return emails_of(services, ids)


# -- running and waiting -----------------------------------------------------------------------


def test_runs_until_a_wait_then_resumes_when_it_is_due(
    services: Services, auto: Automations
) -> None:
    list_id = make_list(services)
    contact_id = create_contact(services, "ada@example.com", PLAN="pro")
    automation = auto.create(
        [
            {"id": "join", "add_to_list": list_id},
            {"id": "pause", "wait": "2d"},
            {"id": "stage", "update_contact": {"attributes": {"STAGE": "'onboarded'"}}},
            {
                "id": "convert",
                "track_event": {
                    "name": "converted",
                    "properties": {"plan": "contact.attributes.PLAN"},
                },
            },
        ]
    )
    enrollment_id = auto.enroll(automation, contact_id)

    assert auto.engine.run_due() == 1
    waiting = auto.enrollment(enrollment_id)
    assert (waiting.status, waiting.step_id) == ("active", "pause")
    assert waiting.due_at == pytest.approx(auto.clock.now() + 2 * DAY)
    assert waiting.lease_owner is None
    assert auto.contact(contact_id).list_ids == [list_id]

    auto.clock.advance(2 * DAY - 60)
    assert auto.engine.run_due() == 0  # not due yet: nothing claimed
    assert auto.enrollment(enrollment_id).step_id == "pause"

    auto.clock.advance(60)
    assert auto.engine.run_due() == 3
    done = auto.enrollment(enrollment_id)
    assert (done.status, done.exit_reason, done.step_id, done.due_at) == (
        "completed",
        "completed",
        None,
        None,
    )
    assert done.finished_at == auto.clock.now()
    assert auto.contact(contact_id).attributes["STAGE"] == "onboarded"
    [tracked] = auto.messages("event.tracked")
    assert tracked["event_name"] == "converted"
    assert tracked["event_properties"] == {"plan": "pro"}
    assert [(s, o) for s, o, _ in auto.log(enrollment_id)] == [
        ("join", "completed"),
        ("pause", "completed"),
        ("stage", "completed"),
        ("convert", "completed"),
    ]
    [exited] = auto.messages("automation.exited")
    assert exited["reason"] == "completed"
    assert exited["enrollment_id"] == enrollment_id
    assert exited["email"] == "ada@example.com"
    assert {m["list_id"] for m in auto.messages("list.contact_added")} == {list_id}


def test_a_waiting_enrollment_claimed_early_goes_back_to_waiting(
    services: Services, auto: Automations
) -> None:
    contact_id = create_contact(services, "ada@example.com")
    automation = auto.create([{"id": "pause", "wait": "1h"}, {"id": "end", "exit": True}])
    enrollment_id = auto.enroll(automation, contact_id)
    auto.engine.run_due()
    due = auto.enrollment(enrollment_id).due_at
    with services.db.write() as conn:  # as if a worker gave its leases back
        store = EnrollmentStore(conn)
        store.claim_due("other", auto.clock.now() + 2 * 3600, auto.clock.now() + 60, 10)
        store.release("other")
    assert auto.engine.run_due() == 0
    again = auto.enrollment(enrollment_id)
    assert (again.status, again.step_id, again.due_at) == ("active", "pause", due)


def test_wait_until_a_time_of_day_in_a_time_zone(services: Services, auto: Automations) -> None:
    contact_id = create_contact(services, "ada@example.com")
    auto.clock.set(datetime(2026, 3, 6, 12, 0, tzinfo=UTC))  # a Friday, 13:00 in Rome
    automation = auto.create(
        [
            {
                "id": "morning",
                "wait_until": {"time": "09:00", "timezone": "Europe/Rome", "days": ["mon"]},
            },
            {"id": "hello", "track_event": {"name": "morning"}},
        ]
    )
    enrollment_id = auto.enroll(automation, contact_id)
    auto.engine.run_due()
    monday_9_rome = datetime(2026, 3, 9, 8, 0, tzinfo=UTC).timestamp()
    assert auto.enrollment(enrollment_id).due_at == monday_9_rome
    auto.clock.set(monday_9_rome)
    assert auto.engine.run_due() == 2
    assert auto.enrollment(enrollment_id).status == "completed"


# -- branches ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "branch"), [("pro", "then"), ("free", "else"), (None, "else"), (0, "then")]
)
def test_if_takes_the_branch_its_expression_says(
    services: Services, auto: Automations, plan: Any, branch: str
) -> None:
    attributes = {} if plan is None else {"PLAN": plan}
    contact_id = create_contact(services, "ada@example.com", **attributes)
    condition = "contact.attributes.PLAN" if plan == 0 else "contact.attributes.PLAN == 'pro'"
    automation = auto.create(
        [
            {
                "id": "plan",
                "if": condition,
                "then": [{"id": "pro", "track_event": {"name": "pro"}}],
                "else": [{"id": "free", "track_event": {"name": "free"}}],
            },
            {"id": "after", "track_event": {"name": "after"}},
        ]
    )
    enrollment_id = auto.enroll(automation, contact_id)
    assert auto.engine.run_due() == 3
    taken = "pro" if branch == "then" else "free"
    assert auto.log(enrollment_id) == [
        ("plan", "completed", {"branch": branch}),
        (taken, "completed", {"event_id": 1, "event_name": taken}),
        ("after", "completed", {"event_id": 2, "event_name": "after"}),
    ]


def _wait_for_automation(auto: Automations) -> Any:
    return auto.create(
        [
            {
                "id": "order",
                "wait_for": {"event_name": "order_placed", "timeout": "7d"},
                "then": [{"id": "thanks", "track_event": {"name": "thanked"}}],
                "else": [{"id": "nudge", "track_event": {"name": "nudged"}}],
            },
            {"id": "last", "exit": True},
        ]
    )


def _track(services: Services, auto: Automations, contact_id: int, name: str) -> int:
    """An event tracked for the contact, matching waits as the triggers do."""
    with services.db.write() as conn:
        return EnrollmentStore(conn).match_waiting(contact_id, name, auto.clock.now())


def test_wait_for_takes_then_when_the_event_comes(services: Services, auto: Automations) -> None:
    contact_id = create_contact(services, "ada@example.com")
    enrollment_id = auto.enroll(_wait_for_automation(auto), contact_id)
    # Tracked before the wait began: it does not count.
    assert _track(services, auto, contact_id, "order_placed") == 0
    auto.engine.run_due()
    waiting = auto.enrollment(enrollment_id)
    assert (waiting.step_id, waiting.waiting_for, waiting.matched) == (
        "order",
        "order_placed",
        False,
    )
    assert waiting.due_at == pytest.approx(auto.clock.now() + 7 * DAY)
    assert _track(services, auto, contact_id, "other_event") == 0
    auto.clock.advance(3 * DAY)
    assert _track(services, auto, contact_id, "order_placed") == 1
    assert auto.engine.run_due() == 3
    assert [(s, o) for s, o, _ in auto.log(enrollment_id)] == [
        ("order", "completed"),
        ("thanks", "completed"),
        ("last", "completed"),
    ]
    done = auto.enrollment(enrollment_id)
    assert (done.status, done.waiting_for) == ("completed", None)


def test_wait_for_takes_else_after_its_timeout(services: Services, auto: Automations) -> None:
    contact_id = create_contact(services, "ada@example.com")
    enrollment_id = auto.enroll(_wait_for_automation(auto), contact_id)
    auto.engine.run_due()
    auto.clock.advance(7 * DAY)
    assert auto.engine.run_due() == 3
    assert auto.log(enrollment_id)[0] == (
        "order",
        "completed",
        {"branch": "else", "timed_out": True},
    )
    assert auto.log(enrollment_id)[1][0] == "nudge"
    assert _track(services, auto, contact_id, "order_placed") == 0  # no longer waiting


def test_exit_ends_the_run_as_completed(services: Services, auto: Automations) -> None:
    contact_id = create_contact(services, "ada@example.com")
    automation = auto.create(
        [{"id": "stop", "exit": True}, {"id": "never", "track_event": {"name": "never"}}]
    )
    enrollment_id = auto.enroll(automation, contact_id)
    assert auto.engine.run_due() == 1
    done = auto.enrollment(enrollment_id)
    assert (done.status, done.exit_reason) == ("completed", "completed")
    assert auto.messages("event.tracked") == []


def test_a_run_stops_after_its_step_cap_and_goes_on_at_once(
    services: Services, auto: Automations
) -> None:
    contact_id = create_contact(services, "ada@example.com")
    automation = auto.create([{"id": f"check-{n}", "if": "`true`"} for n in range(150)])
    enrollment_id = auto.enroll(automation, contact_id)
    assert auto.engine.run_due() == 100
    paused = auto.enrollment(enrollment_id)
    assert (paused.status, paused.step_id, paused.due_at) == (
        "active",
        "check-100",
        auto.clock.now(),
    )
    assert auto.engine.run_due() == 50
    assert auto.enrollment(enrollment_id).status == "completed"


# -- lists, email ------------------------------------------------------------------------------


def test_removing_a_contact_that_is_not_a_member_is_skipped(
    services: Services, auto: Automations
) -> None:
    list_id = make_list(services)
    contact_id = create_contact(services, "ada@example.com")
    automation = auto.create(
        [
            {"id": "leave", "remove_from_list": list_id},
            {"id": "join", "add_to_list": {"list_id": list_id}},
            {"id": "leave-again", "remove_from_list": list_id},
        ]
    )
    enrollment_id = auto.enroll(automation, contact_id)
    auto.engine.run_due()
    assert auto.log(enrollment_id) == [
        ("leave", "skipped", {"list_id": list_id, "reason": "not a member"}),
        ("join", "completed", {"list_id": list_id}),
        ("leave-again", "completed", {"list_id": list_id}),
    ]
    assert auto.contact(contact_id).list_ids == []
    assert len(auto.messages("list.contact_removed")) == 1


def test_send_email_queues_an_automation_email(services: Services, auto: Automations) -> None:
    template_id = make_template(services)
    contact_id = create_contact(services, "ada@example.com", FIRSTNAME="Ada")
    automation = auto.create(
        [
            {
                "id": "hello",
                "send_email": {
                    "template_id": template_id,
                    "params": {"name": "contact.attributes.FIRSTNAME", "via": "trigger.source"},
                },
            }
        ]
    )
    enrollment_id = auto.enroll(automation, contact_id, {"source": "typeform"})
    assert auto.engine.run_due() == 1
    [email] = automation_emails(services, automation.id)
    assert (email.kind, email.status, email.contact_id, email.to_email) == (
        "automation",
        "queued",
        contact_id,
        "ada@example.com",
    )
    assert email.params == {"name": "Ada", "via": "typeform"}
    assert auto.log(enrollment_id) == [
        ("hello", "completed", {"email_id": email.id, "template_id": template_id})
    ]


@pytest.mark.parametrize("why", ["unsubscribed", "blocked"])
def test_send_email_skips_unsubscribed_and_blocked_contacts(
    services: Services, auto: Automations, why: str
) -> None:
    template_id = make_template(services)
    contact_id = create_contact(services, "ada@example.com")
    automation = auto.create(
        [
            {"id": "pause", "wait": "1d"},
            {"id": "hello", "send_email": {"template_id": template_id}},
        ],
        exit_on_unsubscribe=False,
    )
    enrollment_id = auto.enroll(automation, contact_id)
    auto.engine.run_due()
    with services.crm.transaction() as crm:  # during the wait
        contact = crm.find_contact(contact_id)
        if why == "unsubscribed":
            crm.update_contact(contact, unsubscribed=True)
        else:
            crm.contacts.set_email_blocked(contact_id, {"reason": "hard_bounce", "at": "x"})
    auto.clock.advance(DAY)
    auto.engine.run_due()
    reason = "unsubscribed" if why == "unsubscribed" else "blocked: hard_bounce"
    assert auto.log(enrollment_id)[-1] == (
        "hello",
        "skipped",
        {"reason": reason, "template_id": template_id},
    )
    assert automation_emails(services, automation.id) == []
    assert auto.enrollment(enrollment_id).status == "completed"


# -- failures ----------------------------------------------------------------------------------


def test_a_deleted_template_fails_the_enrollment(services: Services, auto: Automations) -> None:
    template_id = make_template(services)
    contact_id = create_contact(services, "ada@example.com")
    automation = auto.create([{"id": "hello", "send_email": {"template_id": template_id}}])
    enrollment_id = auto.enroll(automation, contact_id)
    TemplateService(services.crm, services.settings.base_url).delete(template_id)
    assert auto.engine.run_due() == 0
    failed = auto.enrollment(enrollment_id)
    assert (failed.status, failed.exit_reason, failed.step_id) == ("failed", "failed", None)
    assert failed.error is not None
    assert failed.error["step_id"] == "hello"
    assert str(template_id) in failed.error["message"]
    [exited] = auto.messages("automation.exited")
    assert (exited["reason"], exited["step_id"]) == ("failed", "hello")
    assert exited["error"] == failed.error["message"]
    assert auto.log(enrollment_id)[0][:2] == ("hello", "failed")


def test_a_deleted_list_fails_the_enrollment(services: Services, auto: Automations) -> None:
    list_id = make_list(services)
    contact_id = create_contact(services, "ada@example.com")
    automation = auto.create([{"id": "join", "add_to_list": list_id}])
    enrollment_id = auto.enroll(automation, contact_id)
    with services.crm.transaction() as crm:
        crm.delete_list(list_id)
    auto.engine.run_due()
    failed = auto.enrollment(enrollment_id)
    assert failed.status == "failed"
    assert failed.error == {"step_id": "join", "message": f"No list with id {list_id}."}


def test_an_expression_failing_for_one_contact_fails_only_that_enrollment(
    services: Services, auto: Automations
) -> None:
    list_id = make_list(services)
    good = create_contact(services, "good@example.com", SCORE="12")
    bad = create_contact(services, "bad@example.com", SCORE="twelve")
    automation = auto.create(
        [
            {"id": "join", "add_to_list": list_id},
            {
                "id": "score",
                "update_contact": {
                    "attributes": {"DOUBLE": "abs(to_number(contact.attributes.SCORE))"}
                },
            },
            {"id": "done", "track_event": {"name": "scored"}},
        ]
    )
    bad_enrollment = auto.enroll(automation, bad)
    good_enrollment = auto.enroll(automation, good)
    assert auto.engine.run_due() == 4  # join and score fail-free for good; join for bad

    assert auto.enrollment(good_enrollment).status == "completed"
    assert auto.contact(good).attributes["DOUBLE"] == "12"
    failed = auto.enrollment(bad_enrollment)
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error["step_id"] == "score"
    assert failed.error["expression"] == "abs(to_number(contact.attributes.SCORE))"
    # What the run did before the failing step is kept, and logged.
    assert auto.contact(bad).list_ids == [list_id]
    assert [(s, o) for s, o, _ in auto.log(bad_enrollment)] == [
        ("join", "completed"),
        ("score", "failed"),
    ]
    reasons = {m["enrollment_id"]: m["reason"] for m in auto.messages("automation.exited")}
    assert reasons == {bad_enrollment: "failed", good_enrollment: "completed"}
    assert len(auto.messages("list.contact_added")) == 2
    assert len(auto.messages("event.tracked")) == 1


# -- changes while enrolled --------------------------------------------------------------------


def test_an_edit_keeps_enrollments_on_their_step_by_id(
    services: Services, auto: Automations
) -> None:
    contact_id = create_contact(services, "ada@example.com")
    automation = auto.create(
        [{"id": "pause", "wait": "1d"}, {"id": "old", "track_event": {"name": "old"}}]
    )
    enrollment_id = auto.enroll(automation, contact_id)
    auto.engine.run_due()
    auto.edit_steps(
        automation,
        [
            {"id": "first", "track_event": {"name": "first"}},
            {"id": "pause", "wait": "1d"},
            {"id": "new", "track_event": {"name": "new"}},
        ],
    )
    auto.clock.advance(DAY)
    assert auto.engine.run_due() == 2
    assert [s for s, _, _ in auto.log(enrollment_id)] == ["pause", "new"]


def test_an_enrollment_whose_step_was_edited_away_exits(
    services: Services, auto: Automations
) -> None:
    contact_id = create_contact(services, "ada@example.com")
    automation = auto.create([{"id": "pause", "wait": "1d"}, {"id": "end", "exit": True}])
    enrollment_id = auto.enroll(automation, contact_id)
    auto.engine.run_due()
    auto.edit_steps(automation, [{"id": "other", "wait": "2d"}])
    auto.clock.advance(DAY)
    auto.engine.run_due()
    gone = auto.enrollment(enrollment_id)
    assert (gone.status, gone.exit_reason) == ("exited", "step_removed")
    [exited] = auto.messages("automation.exited")
    assert (exited["reason"], exited["step_id"]) == ("step_removed", "pause")


def test_a_contact_deleted_during_a_wait_exits(services: Services, auto: Automations) -> None:
    contact_id = create_contact(services, "ada@example.com")
    automation = auto.create([{"id": "pause", "wait": "1d"}, {"id": "end", "exit": True}])
    enrollment_id = auto.enroll(automation, contact_id)
    auto.engine.run_due()
    with services.db.write() as conn:  # gone without the trigger that ends enrollments
        ContactStore(conn).delete(contact_id)
    auto.clock.advance(DAY)
    auto.engine.run_due()
    gone = auto.enrollment(enrollment_id)
    assert (gone.status, gone.exit_reason) == ("exited", "contact_deleted")
    [exited] = auto.messages("automation.exited")
    assert exited["reason"] == "contact_deleted"


def test_a_disabled_automation_holds_its_enrollments(services: Services, auto: Automations) -> None:
    contact_id = create_contact(services, "ada@example.com")
    automation = auto.create([{"id": "pause", "wait": "1d"}, {"id": "end", "exit": True}])
    enrollment_id = auto.enroll(automation, contact_id)
    waiting = auto.enroll(auto.create([{"id": "hello", "track_event": {"name": "x"}}]), contact_id)
    auto.engine.run_due()
    auto.update(automation, enabled=False)
    auto.clock.advance(2 * DAY)
    assert auto.engine.run_due() == 0
    held = auto.enrollment(enrollment_id)
    assert (held.status, held.step_id, held.lease_owner) == ("active", "pause", None)
    with services.db.read() as conn:
        assert EnrollmentStore(conn).next_due() is None  # nothing of an enabled automation
    auto.update(automation, enabled=True)
    assert auto.engine.run_due() == 2
    assert auto.enrollment(enrollment_id).status == "completed"
    assert auto.enrollment(waiting).status == "completed"


def test_reentry_runs_a_new_enrollment_from_the_start(
    services: Services, auto: Automations
) -> None:
    contact_id = create_contact(services, "ada@example.com")
    automation = auto.create([{"id": "hello", "track_event": {"name": "hello"}}], reentry="always")
    first = auto.enroll(automation, contact_id)
    auto.engine.run_due()
    second = auto.enroll(automation, contact_id)
    assert auto.engine.run_due() == 1
    assert auto.enrollment(first).status == auto.enrollment(second).status == "completed"
    assert len(auto.messages("event.tracked")) == 2


# -- the lease ---------------------------------------------------------------------------------


def test_a_batch_whose_worker_died_is_claimed_again_after_the_lease(
    services: Services, auto: Automations
) -> None:
    contact_id = create_contact(services, "ada@example.com")
    automation = auto.create([{"id": "hello", "track_event": {"name": "hello"}}])
    enrollment_id = auto.enroll(automation, contact_id)
    dead = auto.make_engine(worker_id="dead", lease=60.0)
    survivor = auto.make_engine(worker_id="survivor", lease=60.0)
    claimed = dead.claim()
    assert [c.id for c in claimed] == [enrollment_id]
    assert survivor.run_due() == 0  # leased by the dead worker
    auto.clock.advance(61)
    assert survivor.run_due() == 1
    # The dead worker comes back with its old batch: it is no longer its own to record.
    assert dead.run(claimed) == 0
    assert len(auto.messages("event.tracked")) == 1
    assert auto.enrollment(enrollment_id).status == "completed"
    assert len(auto.log(enrollment_id)) == 1


def test_release_gives_leases_back_at_once(services: Services, auto: Automations) -> None:
    contact_id = create_contact(services, "ada@example.com")
    enrollment_id = auto.enroll(
        auto.create([{"id": "hi", "track_event": {"name": "hi"}}]), contact_id
    )
    stopping = auto.make_engine(worker_id="stopping")
    assert len(stopping.claim()) == 1
    assert stopping.release() == 1
    assert auto.engine.run_due() == 1
    assert auto.enrollment(enrollment_id).status == "completed"


def test_a_value_refused_for_one_contact_of_a_group_fails_only_that_one(
    services: Services, auto: Automations
) -> None:
    with services.crm.transaction() as crm:
        crm.define_attribute("SCORE", AttributeType.NUMBER)
    good = create_contact(services, "good@example.com", GIVEN="12")
    bad = create_contact(services, "bad@example.com", GIVEN="twelve")
    other = create_contact(services, "other@example.com", GIVEN="7")
    automation = auto.create(
        [{"id": "score", "update_contact": {"attributes": {"SCORE": "contact.attributes.GIVEN"}}}]
    )
    enrollments = {cid: auto.enroll(automation, cid) for cid in (good, bad, other)}
    assert auto.engine.run_due() == 2
    assert auto.contact(good).attributes["SCORE"] == 12
    assert auto.contact(other).attributes["SCORE"] == 7
    assert "SCORE" not in auto.contact(bad).attributes
    failed = auto.enrollment(enrollments[bad])
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error["step_id"] == "score"
    assert "SCORE" in failed.error["message"]
    assert [auto.enrollment(enrollments[c]).status for c in (good, other)] == ["completed"] * 2
    assert len(auto.messages("contact.updated")) == 2


@pytest.mark.parametrize("params", [{}, {"name": "contact.attributes.FIRSTNAME"}])
def test_send_email_for_many_contacts_on_the_same_step(
    services: Services, auto: Automations, params: dict[str, str]
) -> None:
    template_id = make_template(services)
    names = {"ada": "Ada", "bob": "Bob", "cy": "Ada"}
    contacts = {
        n: create_contact(services, f"{n}@example.com", FIRSTNAME=f) for n, f in names.items()
    }
    with services.crm.transaction() as crm:
        crm.update_contact(crm.find_contact(contacts["bob"]), unsubscribed=True)
    automation = auto.create(
        [{"id": "hello", "send_email": {"template_id": template_id, "params": params}}],
        exit_on_unsubscribe=False,
    )
    enrolled = {n: auto.enroll(automation, cid) for n, cid in contacts.items()}
    assert auto.engine.run_due() == 3
    sent = {e.to_email: e for e in automation_emails(services, automation.id)}
    assert set(sent) == {"ada@example.com", "cy@example.com"}
    for name in ("ada", "cy"):
        email = sent[f"{name}@example.com"]
        assert (email.kind, email.status, email.contact_id) == (
            "automation",
            "queued",
            contacts[name],
        )
        assert email.params == ({"name": names[name]} if params else {})
        assert auto.log(enrolled[name]) == [
            ("hello", "completed", {"email_id": email.id, "template_id": template_id})
        ]
    assert auto.log(enrolled["bob"]) == [
        ("hello", "skipped", {"reason": "unsubscribed", "template_id": template_id})
    ]


def test_a_deleted_template_fails_every_enrollment_on_the_step(
    services: Services, auto: Automations
) -> None:
    template_id = make_template(services)
    automation = auto.create([{"id": "hello", "send_email": {"template_id": template_id}}])
    enrolled = [
        auto.enroll(automation, create_contact(services, f"c{n}@example.com")) for n in range(3)
    ]
    TemplateService(services.crm, services.settings.base_url).delete(template_id)
    assert auto.engine.run_due() == 0
    assert {auto.enrollment(e).status for e in enrolled} == {"failed"}
    assert automation_emails(services, automation.id) == []
    assert len(auto.messages("automation.exited")) == 3
