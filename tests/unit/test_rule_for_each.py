"""``for_each`` rules: one plan per item of a batch, in the batch's order, items seen as payloads;
``email_event`` actions resolve on each item and are checked when saved."""

from __future__ import annotations

from typing import Any

import pytest

from hookhub.errors import ValidationFailed
from hookhub.inbound.rules import RuleError, compile_rules, resolve

BATCH = [
    {"event": "delivered", "email": "a@example.com", "smtp-id": "<1@x>"},
    {"event": "open", "email": "a@example.com", "sg_machine_open": True},
    {"event": "delivered", "email": "b@example.com", "smtp-id": "<2@x>"},
]


def _rule(name: str, when: str, kind: str, **extra: Any) -> dict[str, Any]:
    email_event = {"type": kind, "email": "email", **extra}
    return {"name": name, "for_each": "@", "when": when, "email_event": email_event}


def test_plans_follow_the_batch_order_then_the_rule_order() -> None:
    rules = compile_rules(
        [
            _rule("opens", "event == 'open'", "'opened'", proxy="sg_machine_open"),
            _rule("deliveries", "event == 'delivered'", "'delivered'", message_id='"smtp-id"'),
            {
                "name": "whole request",
                "when": "length(@) > `0`",
                "email_event": {"type": "`null`", "email": "[0].email"},
            },
        ]
    )
    plans = resolve(rules, BATCH, None)
    assert [(p.item, p.rule) for p in plans] == [
        (None, "whole request"),
        (0, "deliveries"),
        (1, "opens"),
        (2, "deliveries"),
    ]
    assert plans[1].email_event == {
        "type": "delivered",
        "email": "a@example.com",
        "message_id": "<1@x>",
    }
    assert plans[2].email_event == {"type": "opened", "email": "a@example.com", "proxy": True}
    assert not plans[1].contact_mapped
    assert plans[1].to_api()["item"] == 0
    assert plans[1].expressions["email_event.message_id"] == '"smtp-id"'


def test_for_each_over_nothing_plans_nothing_and_over_a_non_list_fails() -> None:
    rules = compile_rules([{**_rule("r", "event", "'opened'"), "for_each": "items"}])
    assert resolve(rules, {"items": None}, None) == []
    assert resolve(rules, {}, None) == []
    with pytest.raises(RuleError, match="for_each must give a list") as caught:
        resolve(rules, {"items": {"event": "open"}}, None)
    assert caught.value.expression == "items"
    assert caught.value.rule == "r"


def test_event_types_still_filter_the_whole_request() -> None:
    rules = compile_rules([{**_rule("r", "event", "'opened'"), "event_types": ["batch"]}])
    assert resolve(rules, BATCH, "other") == []
    assert len(resolve(rules, BATCH, "batch")) == 3


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"for_each": ""}, "for_each: must be a JMESPath expression"),
        ({"for_each": "[?"}, "not a valid JMESPath expression"),
        ({"email_event": {"email": "e"}}, "needs a type"),
        ({"email_event": {"type": "'opened'"}}, "needs a message_id or an email"),
        ({"email_event": {"type": "'opened'", "email": "e", "at": "t"}}, "unknown keys ['at']"),
    ],
)
def test_malformed_rules_are_refused_with_the_path(rule: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationFailed, match=problem.replace("[", r"\[")):
        compile_rules([{"name": "r", **rule}])
