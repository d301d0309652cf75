"""Common rule expressions are answered without the JMESPath interpreter: same answers, always."""

from __future__ import annotations

from typing import Any

import jmespath
from hypothesis import given, settings
from hypothesis import strategies as st

from hookhub.inbound.rules import _expression

KEYS = st.sampled_from(["a", "b", "type", "data", "object", "a-b", "0"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(["", "x", "customer.created"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=12,
)


def _path(keys: list[str]) -> str:
    return ".".join(key if key.isidentifier() else f'"{key}"' for key in keys)


@settings(max_examples=300, deadline=None)
@given(payload=JSON, keys=st.lists(KEYS, min_size=1, max_size=4))
def test_a_field_path_answers_what_jmespath_answers(payload: Any, keys: list[str]) -> None:
    source = _path(keys)
    expression = _expression(source, "rules[0].contact.email")
    assert expression.fast is not None
    assert expression.search(payload) == jmespath.search(source, payload)


@settings(max_examples=300, deadline=None)
@given(
    payload=JSON,
    keys=st.lists(KEYS, min_size=1, max_size=3),
    literal=st.sampled_from(["", "x", "customer.created"]),
    operator=st.sampled_from(["==", "!="]),
    flipped=st.booleans(),
)
def test_a_path_compared_with_a_string_answers_what_jmespath_answers(
    payload: Any, keys: list[str], literal: str, operator: str, flipped: bool
) -> None:
    sides = [_path(keys), f"'{literal}'"]
    source = f" {operator} ".join(reversed(sides) if flipped else sides)
    expression = _expression(source, "rules[0].when")
    assert expression.fast is not None
    assert expression.search(payload) is jmespath.search(source, payload)


def test_other_expressions_go_to_the_interpreter() -> None:
    for source in (
        "a[0]",
        "a.b[0].c",
        "a || b",
        "length(a)",
        "a.*",
        "@",
        "`1`",
        "a.b | c",
        "a == `1`",  # JMESPath equality of numbers and booleans is not Python's
        "a == b",
        "a < 'x'",
    ):
        assert _expression(source, "x").fast is None, source


def test_the_interpreter_still_answers_the_rest() -> None:
    payload = {"a": [{"c": 1}], "b": 2, "t": True}
    assert _expression("a[0].c", "x").search(payload) == 1
    assert _expression("missing || b", "x").search(payload) == 2
    assert _expression("t == `1`", "x").search(payload) is False
