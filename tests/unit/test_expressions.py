"""Bounded JMESPath evaluation: the same answers as JMESPath, within a budget, JMESPath's truth."""

from __future__ import annotations

from typing import Any

import jmespath
import pytest

from hookhub.core.expressions import (
    Budget,
    ExpressionTooCostly,
    compile_expression,
    evaluate,
    is_truthy,
)

PAYLOAD = {
    "data": {"object": {"email": "ada@example.com", "name": "Ada Lovelace"}},
    "items": [{"sku": "a", "price": "2.5"}, {"sku": "b", "price": "4"}],
}


@pytest.mark.parametrize(
    "source",
    [
        "data.object.email",
        "items[].{sku: sku, price: to_number(price)}",
        "sum(items[].to_number(price))",
        "sort_by(items, &sku)[-1].sku",
        "to_string(items)",
        "items[?sku == 'b'] | [0]",
        "keys(@)",
        "join(',', items[*].sku)",
    ],
)
def test_answers_what_jmespath_answers(source: str) -> None:
    expected = jmespath.search(source, PAYLOAD)
    assert evaluate(compile_expression(source), PAYLOAD, Budget()) == expected


def test_a_value_that_doubles_at_every_step_is_stopped() -> None:
    tree = compile_expression("@" + "|[@,@]" * 60)
    with pytest.raises(ExpressionTooCostly, match="bytes of values"):
        evaluate(tree, {"a": "x"}, Budget())


def test_a_long_walk_is_stopped_by_the_step_budget() -> None:
    tree = compile_expression("items[].items[].items[]")
    payload = {"items": [{"items": [{"items": list(range(50))}] * 50}] * 50}
    with pytest.raises(ExpressionTooCostly, match="evaluation steps"):
        evaluate(tree, payload, Budget(max_steps=1000))


def test_one_budget_is_shared_by_every_evaluation_charged_to_it() -> None:
    budget = Budget(max_built=1000)
    tree = compile_expression("[@, @]")
    evaluate(tree, "x" * 200, budget)  # 408 units each
    evaluate(tree, "x" * 200, budget)
    with pytest.raises(ExpressionTooCostly):
        evaluate(tree, "x" * 200, budget)


def test_reading_a_large_payload_costs_nothing_and_deep_nesting_is_measured() -> None:
    big: dict[str, Any] = {"text": "x" * 3_000_000}
    assert evaluate(compile_expression("text"), big, Budget(max_built=100)) == big["text"]
    deep: list[Any] = []
    inner = deep
    for _ in range(5000):
        inner.append([])
        inner = inner[0]
    budget = Budget()
    assert evaluate(compile_expression("[@]"), deep, budget) == [deep]
    assert budget.built > 5000


@pytest.mark.parametrize(
    ("value", "truth"),
    [
        (0, True),
        (0.0, True),
        ("0", True),
        (" ", True),
        ([None], True),
        ({"a": None}, True),
        (True, True),
        (False, False),
        (None, False),
        ("", False),
        ([], False),
        ({}, False),
    ],
)
def test_truthiness_is_jmespaths(value: Any, truth: bool) -> None:
    assert is_truthy(value) is truth
    # JMESPath's own answer for the same value, through `||`.
    assert (jmespath.search("v || 'no'", {"v": value}) != "no") is truth
