"""Plain field paths are walked without the JMESPath interpreter: same answers, always."""

from __future__ import annotations

from typing import Any

import jmespath
from hypothesis import given, settings
from hypothesis import strategies as st

from hookhub.inbound.rules import _expression

KEYS = st.sampled_from(["a", "b", "data", "object", "email", "a-b", "0"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=12,
)


def _quoted(key: str) -> str:
    return key if key.isidentifier() else f'"{key}"'


@settings(max_examples=300, deadline=None)
@given(payload=JSON, keys=st.lists(KEYS, min_size=1, max_size=4))
def test_a_field_path_answers_what_jmespath_answers(payload: Any, keys: list[str]) -> None:
    source = ".".join(_quoted(k) for k in keys)
    expression = _expression(source, "rules[0].contact.email")
    assert expression.path == tuple(keys)
    assert expression.search(payload) == jmespath.search(source, payload)


def test_only_plain_paths_take_the_shortcut() -> None:
    assert _expression("data.object.email", "x").path == ("data", "object", "email")
    assert _expression('"first name"', "x").path == ("first name",)
    for source in ("a[0]", "a.b[0].c", "a || b", "length(a)", "a.*", "@", "`1`", "a.b | c"):
        assert _expression(source, "x").path is None, source


def test_the_interpreter_still_answers_the_rest() -> None:
    payload = {"a": [{"c": 1}], "b": 2}
    assert _expression("a[0].c", "x").search(payload) == 1
    assert _expression("missing || b", "x").search(payload) == 2
