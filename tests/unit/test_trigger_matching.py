"""The pure parts of triggers: which messages an index makes the fan-out look at, which
messages fire which trigger, and a date trigger's occurrence days, scan patterns and matches."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import pytest

from hookhub.automation.date_triggers import due_occurrences, fires_on
from hookhub.automation.definition import parse_definition
from hookhub.automation.registry import Compiled, build_index
from hookhub.automation.triggers import interest, matches
from hookhub.records.automations import Automation
from hookhub.records.contacts import Contact

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _automation(automation_id: int, trigger: dict[str, Any], **fields: Any) -> Automation:
    steps = fields.pop("steps", [{"id": "pause", "wait": "1d"}])
    return Automation(
        id=automation_id,
        name=f"a{automation_id}",
        enabled=fields.pop("enabled", True),
        trigger=trigger,
        filter=None,
        reentry="always",
        exit_on_unsubscribe=fields.pop("exit_on_unsubscribe", True),
        steps=steps,
        version=1,
        created_at=NOW,
        updated_at=NOW,
    )


def _compiled(trigger: dict[str, Any]) -> Compiled:
    automation = _automation(1, trigger)
    return Compiled(automation, parse_definition(automation.definition_body()))


def _contact(**attributes: Any) -> Contact:
    return Contact(1, "ada@example.com", None, attributes, False, NOW, NOW)


def test_no_automations_look_at_nothing() -> None:
    assert interest(build_index([])).types == frozenset()


def test_what_an_index_makes_the_fan_out_look_at() -> None:
    index = build_index(
        [
            _automation(1, {"type": "manual"}, exit_on_unsubscribe=False),
            _automation(
                2, {"type": "list.contact_added"}, enabled=False, exit_on_unsubscribe=False
            ),
        ]
    )
    # Only deletions: a disabled automation's enrollments must still end.
    assert interest(index).types == {"contact.deleted"}
    index = build_index(
        [
            _automation(1, {"type": "manual"}),
            _automation(
                2,
                {"type": "email.opened"},
                steps=[{"wait_for": {"event_name": "paid", "timeout": "1d"}}],
            ),
        ]
    )
    wanted = interest(index)
    assert wanted.types == {
        "contact.deleted",
        "contact.unsubscribed",
        "event.tracked",
        "email.opened",
    }
    assert wanted.exit_on_unsubscribe == (1, 2)


@pytest.mark.parametrize(
    ("trigger", "kind", "data", "fires"),
    [
        ({"type": "list.contact_added"}, "list.contact_added", {"list_id": 7}, True),
        ({"type": "list.contact_added", "list_id": 7}, "list.contact_added", {"list_id": 7}, True),
        ({"type": "list.contact_added", "list_id": 7}, "list.contact_added", {"list_id": 8}, False),
        ({"type": "list.contact_removed", "list_id": 7}, "list.contact_removed", {}, False),
        ({"type": "event.tracked", "event_name": "a"}, "event.tracked", {"event_name": "a"}, True),
        ({"type": "event.tracked", "event_name": "a"}, "event.tracked", {"event_name": "b"}, False),
        ({"type": "email.clicked"}, "email.clicked", {"campaign_id": None}, True),
        ({"type": "email.opened", "campaign_id": 3}, "email.opened", {"campaign_id": 3}, True),
        ({"type": "email.opened", "campaign_id": 3}, "email.opened", {"campaign_id": None}, False),
        ({"type": "contact.created"}, "contact.created", {}, True),
    ],
)
def test_which_messages_fire_which_trigger(
    trigger: dict[str, Any], kind: str, data: dict[str, Any], fires: bool
) -> None:
    assert matches(_compiled(trigger), kind, data) is fires


def _birthday(**trigger: Any) -> Compiled:
    return _compiled({"type": "date", "attribute": "birthday", "yearly": True, **trigger})


def _like(pattern: str, text: str) -> bool:
    """SQL LIKE with "\\" escapes, as the scan's query reads it."""
    regex = ""
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            regex += re.escape(next(chars))
        elif char == "%":
            regex += ".*"
        elif char == "_":
            regex += "."
        else:
            regex += re.escape(char)
    return re.fullmatch(regex, text, re.DOTALL) is not None


def test_the_occurrence_whose_moment_came_within_a_day() -> None:
    compiled = _birthday(at="09:00", timezone="Europe/Rome")
    before = datetime(2026, 5, 3, 6, 59, tzinfo=UTC).timestamp()  # 08:59 in Rome
    assert [o.day for o in due_occurrences(compiled, before)] == [date(2026, 5, 2)]
    at = datetime(2026, 5, 3, 7, 0, tzinfo=UTC).timestamp()
    assert [o.day for o in due_occurrences(compiled, at)] == [date(2026, 5, 3)]


def test_a_time_in_the_spring_gap_fires_at_the_gap_s_end() -> None:
    compiled = _birthday(at="02:30", timezone="Europe/Rome")  # 29 March 2026: 02:00 -> 03:00
    gap_end = datetime(2026, 3, 29, 1, 0, tzinfo=UTC).timestamp()  # 03:00 CEST
    assert [o.day for o in due_occurrences(compiled, gap_end - 1)] == [date(2026, 3, 28)]
    # A 23-hour day: the 28th's moment is still within the last 24 hours (its entries are
    # made already: once per occurrence).
    assert [o.day for o in due_occurrences(compiled, gap_end)] == [
        date(2026, 3, 28),
        date(2026, 3, 29),
    ]


@pytest.mark.parametrize(
    ("trigger", "day", "values"),
    [
        ({}, date(2026, 5, 3), {"1990-05-03": True, "1990-05-04": False, "05-03": False}),
        (
            {},
            date(2027, 2, 28),
            {"2000-02-29": True, "1999-02-28": True, "2000-03-01": False},
        ),
        ({}, date(2028, 2, 28), {"2000-02-29": False, "1999-02-28": True}),
        ({}, date(2028, 2, 29), {"2000-02-29": True, "1999-02-28": False}),
        ({"offset_days": -7}, date(2026, 5, 3), {"1990-05-10": True, "1990-05-03": False}),
        (
            {"yearly": False, "offset_days": 1},
            date(2026, 5, 3),
            {"2026-05-02": True, "2025-05-02": False, "2026-05-02T23:00:00Z": True},
        ),
    ],
)
def test_patterns_and_matches_agree(
    trigger: dict[str, Any], day: date, values: dict[str, bool]
) -> None:
    compiled = _birthday(**trigger)
    moment = datetime(day.year, day.month, day.day, 9, tzinfo=UTC).timestamp()
    [occurrence] = due_occurrences(compiled, moment)
    assert occurrence.day == day
    for value, fires in values.items():
        text = '{"BIRTHDAY":"' + value + '","CITY":"Rome"}'
        found = any(_like(p, text) for p in occurrence.patterns)
        assert found is fires, (value, occurrence.patterns)
        assert (fires_on(compiled, _contact(BIRTHDAY=value), day) is not None) is fires


def test_an_underscore_in_the_attribute_is_no_wildcard() -> None:
    compiled = _compiled({"type": "date", "attribute": "renewal_date"})
    moment = datetime(2026, 5, 3, 9, tzinfo=UTC).timestamp()
    [occurrence] = due_occurrences(compiled, moment)
    assert any(_like(p, '{"RENEWAL_DATE":"2026-05-03"}') for p in occurrence.patterns)
    assert not any(_like(p, '{"RENEWALXDATE":"2026-05-03"}') for p in occurrence.patterns)
