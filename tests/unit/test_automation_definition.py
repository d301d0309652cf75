"""Definitions, the compiled program and automation time, without a database: every step kind
and trigger parses, ids are kept or made, the program's next steps are right, bad input is a
422 naming its place, and waits land on the wall-clock time asked for across DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hookhub.automation.definition import (
    MAX_DEPTH,
    MAX_STEPS,
    SendEmailSpec,
    TrackEventSpec,
    WaitForSpec,
    WaitUntilSpec,
    WebhookSpec,
    parse_definition,
)
from hookhub.automation.timing import (
    date_occurrence,
    local_instant,
    next_time_of_day,
    parse_date_value,
    parse_duration,
)
from hookhub.core.expressions import is_truthy as truthy
from hookhub.errors import ValidationFailed

ROME = ZoneInfo("Europe/Rome")
EVERY_DAY = frozenset(range(7))


def body(steps: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"name": "Welcome", "trigger": {"type": "manual"}, "steps": steps, **fields}


def refused(definition: dict[str, Any]) -> str:
    with pytest.raises(ValidationFailed) as caught:
        parse_definition(definition)
    assert caught.value.status == 422
    path: str = (caught.value.details or {})["path"]
    assert caught.value.message.startswith(path + ": ")
    return path


# -- the contract's example --------------------------------------------------------------------

EXAMPLE = {
    "name": "Welcome series",
    "trigger": {"type": "list.contact_added", "list_id": 3},
    "filter": "contact.attributes.COUNTRY == 'IT'",
    "reentry": "never",
    "exit_on_unsubscribe": True,
    "steps": [
        {"id": "hello", "send_email": {"template_id": 1}},
        {"id": "pause", "wait": "2d"},
        {
            "id": "plan",
            "if": "contact.attributes.PLAN == 'pro'",
            "then": [{"add_to_list": 9}],
            "else": [
                {
                    "wait_for": {"event_name": "order_placed", "timeout": "7d"},
                    "then": [{"track_event": {"name": "converted"}}],
                    "else": [{"send_email": {"template_id": 4}}],
                }
            ],
        },
        {"webhook": {"url": "https://crm.example.com/hook", "include": ["attributes", "trigger"]}},
        {"update_contact": {"attributes": {"STAGE": "'onboarded'"}}},
    ],
}


def test_the_contracts_example_compiles_to_a_flat_program() -> None:
    definition = parse_definition(EXAMPLE)
    program = definition.program
    steps = program.steps
    assert program.first == "hello"
    assert steps["hello"].next == "pause"
    assert steps["pause"].next == "plan"
    assert steps["plan"].then_first == "add_to_list-1"
    assert steps["plan"].else_first == "wait_for-1"
    # The last step of a branch goes on after the step that branched.
    assert steps["add_to_list-1"].next == "webhook-1"
    assert steps["wait_for-1"].then_first == "track_event-1"
    assert steps["wait_for-1"].else_first == "send_email-1"
    assert steps["track_event-1"].next == steps["send_email-1"].next == "webhook-1"
    assert steps["webhook-1"].next == "update_contact-1"
    assert steps["update_contact-1"].next is None
    assert definition.template_ids == {1, 4}
    assert definition.list_ids == {3, 9}
    assert steps["plan"].path == "steps[2]"
    assert steps["send_email-1"].path == "steps[2].else[0].else[0]"
    # The stored tree names every step's id, and parses again to the same program.
    again = parse_definition({**EXAMPLE, "steps": definition.steps_json}).program
    assert again.first == program.first
    assert {s.id: (s.kind, s.next, s.then_first, s.else_first) for s in again.steps.values()} == {
        s.id: (s.kind, s.next, s.then_first, s.else_first) for s in steps.values()
    }


def test_each_step_kind_has_its_settings() -> None:
    definition = parse_definition(
        body(
            [
                {"id": "a", "send_email": {"template_id": 2, "params": {"n": "contact.email"}}},
                {"id": "b", "wait": 90},
                {"id": "c", "wait_until": {"time": "09:30", "timezone": "Europe/Rome"}},
                {"id": "d", "wait_until": {"time": "18:00", "days": ["MON", "fri"]}},
                {"id": "e", "wait_for": {"event_name": "paid", "timeout": "1w"}},
                {"id": "f", "add_to_list": {"list_id": 5}},
                {"id": "g", "remove_from_list": 5},
                {"id": "h", "update_contact": {"attributes": {"first_name": "contact.email"}}},
                {"id": "i", "track_event": {"name": "seen", "properties": {"k": "trigger.x"}}},
                {"id": "j", "webhook": {"url": "http://hooks.example.com/x"}},
                {"id": "k", "exit": True},
            ]
        )
    )
    steps = definition.program.steps
    assert isinstance(steps["a"].spec, SendEmailSpec)
    assert steps["a"].spec.params["n"].source == "contact.email"
    assert steps["b"].spec == 90.0
    assert steps["c"].spec == WaitUntilSpec(time(9, 30), ROME, EVERY_DAY)
    assert steps["d"].spec == WaitUntilSpec(time(18, 0), ZoneInfo("UTC"), frozenset({0, 4}))
    assert steps["e"].spec == WaitForSpec("paid", 7 * 86400.0)
    assert steps["f"].spec == steps["g"].spec == 5
    assert set(steps["h"].spec) == {"FIRST_NAME"}
    assert isinstance(steps["i"].spec, TrackEventSpec)
    assert steps["j"].spec == WebhookSpec("http://hooks.example.com/x", ())
    assert steps["k"].spec is None
    assert {i for i, s in steps.items() if s.waits} == {"b", "c", "d", "e"}


def test_generated_ids_follow_kind_and_order_and_avoid_given_ones() -> None:
    definition = parse_definition(
        body(
            [
                {"wait": "1d"},
                {"id": "wait-2", "wait": "2d"},
                {"wait": "3d"},
                {"if": "`true`", "then": [{"exit": True}], "else": [{"wait": "4d"}]},
            ]
        )
    )
    ids = [step["id"] for step in definition.steps_json]
    assert ids == ["wait-1", "wait-2", "wait-3", "if-1"]
    branch = definition.steps_json[3]
    assert branch["then"][0]["id"] == "exit-1"
    assert branch["else"][0]["id"] == "wait-4"


def test_the_same_shape_gets_the_same_ids() -> None:
    steps = [{"wait": "1d"}, {"track_event": {"name": "x"}}]
    first = parse_definition(body(steps)).steps_json
    assert parse_definition(body(steps)).steps_json == first


@pytest.mark.parametrize(
    "trigger",
    [
        {"type": "contact.created"},
        {"type": "list.contact_added"},
        {"type": "list.contact_removed", "list_id": 4},
        {"type": "event.tracked", "event_name": "order_placed"},
        {"type": "email.opened", "campaign_id": 2},
        {"type": "email.clicked"},
        {"type": "contact.unsubscribed"},
        {"type": "date", "attribute": "birthday", "offset_days": -7, "yearly": True},
        {"type": "manual"},
    ],
)
def test_every_trigger_type_parses_and_answers_its_json(trigger: dict[str, Any]) -> None:
    parsed = parse_definition(body([{"exit": True}], trigger=trigger)).trigger
    assert parsed.to_json()["type"] == trigger["type"]
    assert parse_definition(body([{"exit": True}], trigger=parsed.to_json())).trigger == parsed


# -- refused, with the place -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "path"),
    [
        ([{"jump": 3}], "steps[0]"),
        ([{"wait": "1d", "exit": True}], "steps[0]"),
        ([{"wait": "soon"}], "steps[0].wait"),
        ([{"wait": 0}], "steps[0].wait"),
        ([{"wait": "5000w"}], "steps[0].wait"),
        ([{"wait_until": {"time": "25:00"}}], "steps[0].wait_until.time"),
        (
            [{"wait_until": {"time": "09:00", "timezone": "Mars/Olympus"}}],
            "steps[0].wait_until.timezone",
        ),
        ([{"wait_until": {"time": "09:00", "days": ["someday"]}}], "steps[0].wait_until.days"),
        ([{"if": "contact.[", "then": []}], "steps[0].if"),
        ([{"wait": "1d", "then": [{"exit": True}]}], "steps[0]"),
        (
            [{"if": "`true`", "then": [{"wait_for": {"event_name": "x"}}]}],
            "steps[0].then[0].wait_for.timeout",
        ),
        ([{"send_email": {"template_id": "one"}}], "steps[0].send_email.template_id"),
        (
            [{"send_email": {"template_id": 1, "params": {"x": "a.["}}}],
            "steps[0].send_email.params.x",
        ),
        ([{"add_to_list": -1}], "steps[0].add_to_list"),
        ([{"update_contact": {"attributes": {}}}], "steps[0].update_contact.attributes"),
        ([{"track_event": {"name": "has space"}}], "steps[0].track_event.name"),
        ([{"webhook": {"url": "ftp://example.com"}}], "steps[0].webhook.url"),
        (
            [{"webhook": {"url": "https://x.example", "include": ["secrets"]}}],
            "steps[0].webhook.include",
        ),
        ([{"exit": {"reason": "x"}}], "steps[0].exit"),
        ([{"id": "bad id", "exit": True}], "steps[0].id"),
        ([{"id": "a", "wait": "1d"}, {"id": "a", "exit": True}], "steps[1].id"),
        ([], "steps"),
        ("wait", "steps"),
    ],
)
def test_a_bad_step_is_refused_with_its_path(steps: Any, path: str) -> None:
    assert refused(body(steps)) == path


def test_a_repeated_id_in_another_branch_is_refused() -> None:
    steps = [
        {
            "id": "x",
            "if": "`true`",
            "then": [{"id": "y", "exit": True}],
            "else": [{"id": "y", "exit": True}],
        }
    ]
    assert refused(body(steps)) == "steps[0].else[0].id"


def test_too_many_steps_or_too_deep_is_refused() -> None:
    assert refused(body([{"exit": True}] * (MAX_STEPS + 1))) == "steps"
    nested: list[dict[str, Any]] = [{"exit": True}]
    for _ in range(MAX_DEPTH + 1):
        nested = [{"if": "`true`", "then": nested}]
    assert "then" in refused(body(nested))


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"name": ""}, "name"),
        ({"trigger": {"type": "sometimes"}}, "trigger.type"),
        ({"trigger": {"type": "event.tracked"}}, "trigger.event_name"),
        ({"trigger": {"type": "contact.created", "list_id": 3}}, "trigger"),
        (
            {"trigger": {"type": "date", "attribute": "BIRTHDAY", "offset_days": 400}},
            "trigger.offset_days",
        ),
        ({"filter": "contact.["}, "filter"),
        ({"reentry": "twice"}, "reentry"),
        ({"exit_on_unsubscribe": "yes"}, "exit_on_unsubscribe"),
    ],
)
def test_bad_fields_are_refused_with_their_path(fields: dict[str, Any], path: str) -> None:
    assert refused(body([{"exit": True}], **fields)) == path


# -- truthiness --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (False, False),
        ("", False),
        ([], False),
        ({}, False),
        (0, True),
        (0.0, True),
        ("no", True),
        ([0], True),
        ({"a": None}, True),
        (True, True),
    ],
)
def test_if_follows_jmespath_truthiness(value: Any, expected: bool) -> None:
    assert truthy(value) is expected


# -- time --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("45s", 45), ("30m", 1800), (" 2h ", 7200), ("2d", 172800), ("1w", 604800), (1.5, 1.5)],
)
def test_durations(value: Any, seconds: float) -> None:
    assert parse_duration(value, "wait") == seconds


def _utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def test_next_time_of_day_is_today_or_on_the_next_allowed_day() -> None:
    # Friday 6 March 2026, 08:00 UTC = 09:00 in Rome (CET).
    friday_morning = _utc(2026, 3, 6, 7, 0)
    assert next_time_of_day(friday_morning, time(9, 0), ROME, EVERY_DAY) == _utc(2026, 3, 6, 8, 0)
    # Exactly at the time: now.
    at_nine = _utc(2026, 3, 6, 8, 0)
    assert next_time_of_day(at_nine, time(9, 0), ROME, EVERY_DAY) == at_nine
    # Past it: tomorrow; on Mondays only: the next Monday.
    assert next_time_of_day(at_nine + 1, time(9, 0), ROME, EVERY_DAY) == _utc(2026, 3, 7, 8, 0)
    assert next_time_of_day(at_nine + 1, time(9, 0), ROME, frozenset({0})) == _utc(2026, 3, 9, 8, 0)
    assert next_time_of_day(at_nine, time(9, 0), ROME, frozenset({4})) == at_nine


def test_waits_keep_the_wall_clock_time_across_daylight_saving() -> None:
    # Rome moves from CET (+1) to CEST (+2) on 29 March 2026 at 02:00.
    before = next_time_of_day(_utc(2026, 3, 27, 12, 0), time(9, 0), ROME, EVERY_DAY)
    after = next_time_of_day(before + 1, time(9, 0), ROME, EVERY_DAY)
    assert datetime.fromtimestamp(before, ROME).hour == 9
    assert datetime.fromtimestamp(after, ROME).hour == 9
    assert after - before == 23 * 3600  # the night of the change is an hour short
    # And back on 25 October: 25 hours.
    late = next_time_of_day(_utc(2026, 10, 23, 12, 0), time(9, 0), ROME, EVERY_DAY)
    assert next_time_of_day(late + 1, time(9, 0), ROME, EVERY_DAY) - late == 25 * 3600


def test_a_time_in_the_spring_gap_is_the_gaps_end() -> None:
    # 02:30 does not exist in Rome on 29 March 2026: clocks go from 02:00 to 03:00.
    instant = local_instant(date(2026, 3, 29), time(2, 30), ROME)
    assert datetime.fromtimestamp(instant, ROME).strftime("%H:%M") == "03:00"
    assert instant == _utc(2026, 3, 29, 1, 0)
    # So is a wait until 02:30 begun that night: it ends when the clocks jump.
    night = _utc(2026, 3, 28, 23, 0)
    assert next_time_of_day(night, time(2, 30), ROME, EVERY_DAY) == instant
    # An ambiguous autumn time is its first occurrence (still summer time).
    first = local_instant(date(2026, 10, 25), time(2, 30), ROME)
    assert first == _utc(2026, 10, 25, 0, 30)


def test_date_occurrences() -> None:
    today = date(2026, 5, 10)
    birthday = date(1990, 5, 12)
    assert date_occurrence(birthday, offset_days=0, yearly=True, today=today) == date(2026, 5, 12)
    assert date_occurrence(birthday, offset_days=-7, yearly=True, today=today) == date(2027, 5, 5)
    leap = date(2000, 2, 29)
    assert date_occurrence(leap, offset_days=0, yearly=True, today=date(2026, 1, 1)) == date(
        2026, 2, 28
    )
    renewal = date(2026, 6, 1)
    assert date_occurrence(renewal, offset_days=-30, yearly=False, today=today) == date(2026, 5, 2)
    assert parse_date_value("1990-05-12T10:00:00Z") == date(1990, 5, 12)
    assert parse_date_value("12/05/1990") is None
    assert parse_date_value(19900512) is None


def test_a_yearly_date_trigger_enrols_each_year_unless_never_is_asked_for() -> None:
    base: dict[str, Any] = {"name": "Birthday", "steps": [{"exit": True}]}
    birthday = {"type": "date", "attribute": "BIRTHDAY", "yearly": True}
    renewal = {"type": "date", "attribute": "RENEWAL"}
    assert parse_definition({**base, "trigger": birthday}).reentry == "after_exit"
    assert parse_definition({**base, "trigger": birthday, "reentry": "never"}).reentry == "never"
    assert parse_definition({**base, "trigger": renewal}).reentry == "never"
    assert parse_definition({**base, "trigger": {"type": "manual"}}).reentry == "never"
