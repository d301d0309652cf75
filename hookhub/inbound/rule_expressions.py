"""One rule expression: compiled once when its rule set is saved, evaluated on each payload.

:func:`compile_expression` refuses what is not a valid, bounded JMESPath expression (pointing at
its place in the rule set); :class:`Expression` evaluates it within the request's budget, with a
plain-Python fast path for the shapes rules use most. Every evaluation failure is a
:class:`RuleError` naming the expression; nothing else may escape, whatever the payload holds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from hookhub.core.expressions import Budget, Compiled, ExpressionTooCostly, compile_tree, evaluate
from hookhub.errors import ValidationFailed

MAX_EXPRESSION = 1000


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled JMESPath expression and where it stands in the rule set."""

    source: str
    where: str
    parsed: ParsedResult
    fast: Callable[[Any], Any] | None = None
    """The same expression without the interpreter, for the common shapes (see _shortcut)."""
    compiled: Compiled | None = None
    """Else the same as closures, for most other shapes (``core.expressions.compile_tree``)."""

    def search(self, payload: Any, budget: Budget | None = None) -> Any:
        """The expression's value on ``payload``, charged to ``budget`` (a fresh one if None).

        Any failure, whatever Python raised on the payload's values (OverflowError from
        ``floor(to_number('1e999'))``, ...), is a RuleError naming this expression.
        """
        if self.fast is not None:
            return self.fast(payload)
        try:
            if self.compiled is not None:
                return self.compiled(payload, budget or Budget())
            return evaluate(self.parsed.parsed, payload, budget or Budget())
        except ExpressionTooCostly as exc:
            raise RuleTooCostly(
                f"{self.where}: {exc}; simplify the expression", expression=self.source
            ) from exc
        except JMESPathError as exc:
            raise RuleError(f"{self.where}: {exc}", expression=self.source) from exc
        except Exception as exc:  # MemoryError and RecursionError too: they are the payload's
            raise RuleError(
                f"{self.where}: cannot evaluate ({type(exc).__name__}: {exc})",
                expression=self.source,
            ) from exc


class RuleError(ValidationFailed):
    """A rule could not be applied to a payload; carries the expression at fault."""

    def __init__(
        self, message: str, *, expression: str | None = None, rule: str | None = None
    ) -> None:
        super().__init__(message, details={"expression": expression, "rule": rule})
        self.expression = expression
        self.rule = rule


class RuleTooCostly(RuleError):
    """An expression went past its evaluation budget (see ``hookhub.core.expressions``)."""


def _fail(where: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{where}: {message}", details={"path": where})


def compile_expression(value: Any, where: str) -> Expression:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, "must be a JMESPath expression (a non-empty string)")
    if len(value) > MAX_EXPRESSION:
        raise _fail(where, f"is longer than {MAX_EXPRESSION} characters")
    if "\x00" in value:  # it is stored as the failing expression of requests, in text columns
        raise _fail(where, "must not contain NUL characters")
    try:
        parsed = jmespath.compile(value)
    except JMESPathError as exc:
        raise ValidationFailed(
            f"{where}: {value!r} is not a valid JMESPath expression: {exc}",
            details={"path": where, "expression": value},
        ) from exc
    except (RecursionError, ValueError, TypeError) as exc:
        raise _fail(where, f"cannot be parsed ({type(exc).__name__})") from exc
    fast = _shortcut(parsed.parsed)
    compiled = None if fast is not None else compile_tree(parsed.parsed)
    return Expression(value, where, parsed, fast, compiled)


def _shortcut(node: Any) -> Callable[[Any], Any] | None:
    """A plain function answering what JMESPath answers, for the shapes rules use most.

    Field paths (``data.object.email``) and a path compared with a string (``type ==
    'customer.created'``, ``!=`` too) are most rules' expressions; each request evaluates a
    dozen, and the interpreter cost more than everything else in the rules. Anything else is
    left to JMESPath.
    """
    path = _field_path(node)
    if path is not None:
        return functools.partial(_walk, path)
    if node.get("type") == "comparator" and node.get("value") in ("eq", "ne"):
        left, right = node.get("children", (None, None))
        if isinstance(left, dict) and left.get("type") == "literal":
            left, right = right, left
        path = _field_path(left)
        if path is None or not isinstance(right, dict) or right.get("type") != "literal":
            return None
        literal = right.get("value")
        if not isinstance(literal, str):
            return None  # JMESPath equality of numbers and booleans is not Python's
        equal = node["value"] == "eq"
        return lambda payload: (_walk(path, payload) == literal) is equal
    return None


def _walk(path: tuple[str, ...], payload: Any) -> Any:
    # JMESPath's answer for a field path: a missing key, or a step into anything but an
    # object, gives null.
    value = payload
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _field_path(node: Any) -> tuple[str, ...] | None:
    """``a.b.c`` as ``("a", "b", "c")``; None for any other expression."""
    kind = node.get("type") if isinstance(node, dict) else None
    if kind == "field" and isinstance(node.get("value"), str):
        return (node["value"],)
    if kind == "subexpression":
        keys: tuple[str, ...] = ()
        for child in node.get("children", ()):
            part = _field_path(child)
            if part is None:
                return None
            keys += part
        return keys or None
    return None
