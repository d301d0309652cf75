"""Common rule expressions are answered without the JMESPath interpreter: same answers, always."""

from __future__ import annotations

import dataclasses
from typing import Any

import jmespath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookhub.errors import ValidationFailed
from hookhub.inbound.rules import RuleError, RuleTooCostly, _expression

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


_TEXTS = st.sampled_from(["", "x", "Jenny Rosen", "a b c", "customer.created"])
LEAVES = st.sampled_from(
    ["a", "b", "data.name", "a.b", "@", "`null`", "`0`", "`[]`", "'x'", "'a b'", "`[1, 2]`"]
)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pair = st.tuples(children, children)
    return st.one_of(
        pair.map(lambda p: f"({p[0]}) && ({p[1]})"),
        pair.map(lambda p: f"({p[0]}) || ({p[1]})"),
        children.map(lambda c: f"!({c})"),
        children.map(lambda c: f"({c})[0]"),
        children.map(lambda c: f"({c})[-1]"),
        children.map(lambda c: f"({c})[1:]"),
        children.map(lambda c: f"({c})[::2]"),
        children.map(lambda c: f"({c})[*].a"),
        children.map(lambda c: f"split({c}, ' ')"),
        children.map(lambda c: f"join(' ', {c})"),
        children.map(lambda c: f"lower({c})"),
        children.map(lambda c: f"length({c})"),
        children.map(lambda c: f"a.({c})"),
    )


EXPRESSIONS = st.recursive(LEAVES, _combine, max_leaves=6)
PAYLOADS = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2) | _TEXTS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "data", "name"]), children, max_size=3)
    ),
    max_leaves=10,
)


def _outcome(run: Any) -> Any:
    try:
        return ("value", run())
    except RuleError as exc:
        return ("error", type(exc).__name__, exc.message, exc.expression)


@settings(max_examples=600, deadline=None)
@given(source=EXPRESSIONS, payload=PAYLOADS)
def test_compiled_expressions_answer_what_the_interpreter_answers(
    source: str, payload: Any
) -> None:
    """Expressions rules use (&&, ||, !, indexes, slices, projections, functions) run as
    closures; their answers and their errors are the interpreter's."""
    try:
        expression = _expression(source, "rules[0].when")
    except ValidationFailed:
        return  # not an expression JMESPath accepts
    interpreted = dataclasses.replace(expression, fast=None, compiled=None)
    assert _outcome(lambda: expression.search(payload)) == _outcome(
        lambda: interpreted.search(payload)
    ), source


def test_the_stripe_name_splits_are_compiled() -> None:
    for source in (
        "data.object.name && split(data.object.name, ' ')[0]",
        "data.object.name && join(' ', split(data.object.name, ' ')[1:]) || `null`",
    ):
        expression = _expression(source, "x")
        assert expression.compiled is not None, source
        interpreted = dataclasses.replace(expression, compiled=None)
        for name in ("Ada King Lovelace", "Ada", "", None):
            payload = {"data": {"object": {"name": name}}}
            assert expression.search(payload) == interpreted.search(payload), name


def test_the_budget_still_bounds_compiled_expressions() -> None:
    expression = _expression("join(' ', split(a, ''))", "x")
    assert expression.compiled is not None
    with pytest.raises(RuleTooCostly):
        expression.search({"a": "x" * 3_000_000})
