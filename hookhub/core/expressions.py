"""JMESPath evaluation with a budget: every expression Hookhub runs goes through here.

A JMESPath expression of a thousand characters can describe an answer of astronomical size
(``@|[@,@]|[@,@]|...`` doubles at every step, and serializing it runs out of memory). So each
evaluation is charged against a :class:`Budget`: one step per node the interpreter visits or
element a function walks, and the expanded size of every value it builds (lists, objects,
strings; as many units as the value's JSON would have bytes, roughly). Exceeding either raises
:class:`ExpressionTooCostly`, which callers turn into the failure of that one request or
preview. Truthiness is JMESPath's own (:func:`is_truthy`: ``0`` is true), never Python's.

Pure: no database, no clock; the only state is the budget a caller hands in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jmespath
from jmespath import functions as jp_functions
from jmespath.visitor import Options, TreeInterpreter

if TYPE_CHECKING:
    from jmespath.visitor import _TreeNode

MAX_STEPS = 1_000_000
"""Interpreter steps one budget allows (a rule set on one payload uses a few hundred)."""
MAX_BUILT = 4 * 1024 * 1024
"""Units of values one budget may build: about the bytes of their JSON, four times the default
body limit, so that copying a large payload's parts around still fits."""

_SCALAR_SIZE = 8
_FLAT_LIST = 64
# Functions whose answer is a new value rather than a part of their arguments (those are
# charged when they were built or not at all: a payload's own parts cost nothing to read).
_BUILDERS = frozenset(
    {
        "from_items",
        "join",
        "keys",
        "lower",
        "map",
        "merge",
        "reverse",
        "sort",
        "sort_by",
        "split",
        "to_array",
        "to_string",
        "upper",
        "values",
    }
)


class ExpressionTooCostly(Exception):
    """An evaluation went past its budget of steps or of built values."""


@dataclass(slots=True)
class Budget:
    """What the evaluations sharing this object may still spend (one request's, typically)."""

    max_steps: int = MAX_STEPS
    max_built: int = MAX_BUILT
    steps: int = 0
    built: int = 0
    # id(value) -> (value, expanded size): a value built from shared parts is measured once;
    # the value is kept so that its id is not reused while the budget lives.
    _sizes: dict[int, tuple[Any, int]] = field(default_factory=dict, repr=False)
    _interpreter: _BoundedInterpreter | None = field(default=None, repr=False)

    def step(self, count: int = 1) -> None:
        self.steps += count
        if self.steps > self.max_steps:
            raise ExpressionTooCostly(
                f"the expression took more than {self.max_steps:,} evaluation steps"
            )

    def charge(self, value: Any) -> None:
        """Count ``value``, which the interpreter has just built, against the budget."""
        self.built += self.size(value)
        if self.built > self.max_built:
            raise self._too_much()

    def size(self, value: Any) -> int:
        """The expanded size of ``value`` (shared parts counted each time they appear).

        Iterative, so that a deeply nested payload is measured like any other.
        """
        if not isinstance(value, list | dict):
            return _leaf_size(value)
        if type(value) is list and len(value) <= _FLAT_LIST:
            # A short list of strings (what split() builds), measured in one pass.
            total = 2
            for item in value:
                if type(item) is not str:
                    break
                total += len(item) + 3
            else:
                if total > self.max_built - self.built:
                    raise self._too_much()
                return total
        known = self._sizes.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        limit = self.max_built - self.built
        # Each frame: [container, its remaining (key, item) pairs, size so far].
        stack: list[list[Any]] = [[value, _pairs(value), 2]]
        while True:
            frame = stack[-1]
            for key, item in frame[1]:
                frame[2] += 1 + (len(key) + 3 if key is not None else 0)
                if isinstance(item, list | dict):
                    known = self._sizes.get(id(item))
                    if known is None or known[0] is not item:
                        stack.append([item, _pairs(item), 2])
                        break
                    frame[2] += known[1]
                else:
                    frame[2] += _leaf_size(item)
                if frame[2] > limit:  # no need to measure further: it does not fit
                    raise self._too_much()
            else:
                container, _, total = stack.pop()
                if total > limit:
                    raise self._too_much()
                self._sizes[id(container)] = (container, total)
                if not stack:
                    return int(total)
                stack[-1][2] += total

    def _too_much(self) -> ExpressionTooCostly:
        return ExpressionTooCostly(
            f"the expression built more than {self.max_built:,} bytes of values"
        )


def _leaf_size(value: Any) -> int:
    return len(value) + 2 if isinstance(value, str) else _SCALAR_SIZE


def _pairs(value: list[Any] | dict[str, Any]) -> Iterator[tuple[str | None, Any]]:
    if isinstance(value, dict):
        return iter(value.items())
    return ((None, item) for item in value)


class Functions(jp_functions.Functions):
    """JMESPath's built-ins plus a few that mapping payloads keeps asking for."""

    @jp_functions.signature({"types": ["array"]})
    def _func_from_items(self, items: list[Any]) -> dict[str, Any]:
        """``[[key, value], ...]`` -> object (pairs with a non-string key are skipped)."""
        return {
            pair[0]: pair[1]
            for pair in items
            if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)
        }

    @jp_functions.signature({"types": ["string"]}, {"types": ["string"]})
    def _func_split(self, text: str, separator: str) -> list[str]:
        return text.split(separator) if separator else list(text)

    @jp_functions.signature({"types": ["string"]})
    def _func_lower(self, text: str) -> str:
        return text.lower()

    @jp_functions.signature({"types": ["string"]})
    def _func_upper(self, text: str) -> str:
        return text.upper()


_FUNCTIONS = Functions()
_OPTIONS = Options(custom_functions=_FUNCTIONS)


class _BoundedInterpreter(TreeInterpreter):
    """JMESPath's tree interpreter, charging every node visited and every value built."""

    def __init__(self, budget: Budget) -> None:
        super().__init__(_OPTIONS)
        self._budget = budget
        self._methods: dict[str, Callable[..., Any]] = {}

    def visit(self, node: _TreeNode, *args: Any, **kwargs: Any) -> Any:
        # Visitor.visit, inlined with the step count: this runs for every node.
        budget = self._budget
        budget.steps += 1
        if budget.steps > budget.max_steps:
            budget.step(0)  # raises, with the message
        kind = node["type"]
        method = self._methods.get(kind)
        if method is None:
            method = self._methods[kind] = getattr(self, "visit_" + kind, self.default_visit)
        return method(node, *args, **kwargs)

    def _built(self, value: Any) -> Any:
        if value is not None:
            self._budget.charge(value)
        return value

    def visit_function_expression(self, node: _TreeNode, value: Any) -> Any:
        args = [self.visit(child, value) for child in node["children"]]
        for arg in args:  # the arrays and objects a function walks cost a step an element
            if isinstance(arg, list | dict):
                self._budget.step(len(arg))
        result = _FUNCTIONS.call_function(node["value"], args)
        return self._built(result) if node["value"] in _BUILDERS else result

    def visit_flatten(self, node: _TreeNode, value: Any) -> Any:
        return self._built(super().visit_flatten(node, value))

    def visit_multi_select_dict(self, node: _TreeNode, value: Any) -> Any:
        return self._built(super().visit_multi_select_dict(node, value))

    def visit_multi_select_list(self, node: _TreeNode, value: Any) -> Any:
        return self._built(super().visit_multi_select_list(node, value))

    def visit_projection(self, node: _TreeNode, value: Any) -> Any:
        return self._built(super().visit_projection(node, value))

    def visit_value_projection(self, node: _TreeNode, value: Any) -> Any:
        return self._built(super().visit_value_projection(node, value))

    def visit_filter_projection(self, node: _TreeNode, value: Any) -> Any:
        return self._built(super().visit_filter_projection(node, value))

    def visit_slice(self, node: _TreeNode, value: Any) -> Any:
        return self._built(super().visit_slice(node, value))


def compile_expression(source: str) -> Any:
    """The parsed tree of ``source`` (JMESPath's exceptions propagate)."""
    return jmespath.compile(source).parsed


def evaluate(tree: Any, payload: Any, budget: Budget) -> Any:
    """``tree`` (from :func:`compile_expression`) evaluated on ``payload``, within ``budget``.

    Raises ExpressionTooCostly past the budget; JMESPath's errors, and whatever Python raises
    on a value (OverflowError from ``floor`` of an infinity, ...), propagate to the caller.
    """
    interpreter = budget._interpreter
    if interpreter is None:  # one per budget: its method cache serves every expression
        interpreter = budget._interpreter = _BoundedInterpreter(budget)
    return interpreter.visit(tree, payload)


def is_truthy(value: Any) -> bool:
    """JMESPath's truth: false, null, "", [] and {} are false; everything else (0 too) is true."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


Compiled = Callable[[Any, Budget], Any]


def compile_tree(node: Any) -> Compiled | None:
    """``node`` (a parsed tree) as nested Python closures, for the shapes rules use most.

    What the interpreter answers and raises, without its per-node dispatch: field paths,
    literals, ``@``, ``&&``, ``||``, ``!``, ``==`` and ``!=``, an index or a slice, a
    projection, and function calls (JMESPath's own argument checks, the same charges to the
    budget for what functions walk and build). Anything else: None (the interpreter runs it).
    Each compound node evaluated costs a budget step, each projected element one more, so
    evaluation stays bounded as with the interpreter.
    """
    kind = node.get("type") if isinstance(node, dict) else None
    children = node.get("children", ()) if kind else ()
    if kind == "field":
        key = node["value"]
        return lambda value, _b: value.get(key) if isinstance(value, dict) else None
    if kind == "subexpression":
        steps = [compile_tree(child) for child in children]
        if any(step is None for step in steps):
            return None
        return _chain(steps, stop_at_null=True)  # type: ignore[arg-type]
    if kind == "literal":
        constant = node["value"]
        return lambda _v, _b: constant
    if kind in ("identity", "current"):
        return lambda value, _b: value
    if kind == "index":
        index = node["value"]
        return lambda value, _b: _index(value, index)
    if kind == "slice":
        piece = slice(*children)

        def sliced(value: Any, budget: Budget) -> Any:
            if not isinstance(value, list):
                return None
            result = value[piece]
            budget.charge(result)
            return result

        return sliced
    parts = [compile_tree(child) for child in children]
    if any(part is None for part in parts):
        return None
    compiled: list[Compiled] = parts  # type: ignore[assignment]
    if kind == "index_expression":
        return _chain(compiled)
    if kind == "and_expression":
        left, right = compiled

        def both(value: Any, budget: Budget) -> Any:
            _step(budget)
            matched = left(value, budget)
            return right(value, budget) if is_truthy(matched) else matched

        return both
    if kind == "or_expression":
        left, right = compiled

        def either(value: Any, budget: Budget) -> Any:
            _step(budget)
            matched = left(value, budget)
            return matched if is_truthy(matched) else right(value, budget)

        return either
    if kind == "not_expression":
        (inner,) = compiled

        def negated(value: Any, budget: Budget) -> Any:
            _step(budget)
            result = inner(value, budget)
            if isinstance(result, int | float) and not isinstance(result, bool) and result == 0:
                return False
            return not result

        return negated
    if kind == "projection":
        base_of, each = compiled

        def projected(value: Any, budget: Budget) -> Any:
            _step(budget)
            base = base_of(value, budget)
            if not isinstance(base, list):
                return None
            budget.step(len(base))
            collected = [item for item in (each(e, budget) for e in base) if item is not None]
            budget.charge(collected)
            return collected

        return projected
    if kind == "function_expression":
        name = node["value"]
        builds = name in _BUILDERS

        def called(value: Any, budget: Budget) -> Any:
            _step(budget)
            args = [arg(value, budget) for arg in compiled]
            for arg in args:
                if isinstance(arg, list | dict):
                    budget.step(len(arg))
            direct = _DIRECT.get(name)
            if direct is not None and len(args) == direct[0] and direct[1](args):
                result = direct[2](*args)
            else:  # JMESPath's own call: its argument checks, and its errors
                result = _FUNCTIONS.call_function(name, args)
            if builds and result is not None:
                budget.charge(result)
            return result

        return called
    return None


def _strings(values: list[Any]) -> bool:
    return all(type(v) is str for v in values)


def _texts_joined(args: list[Any]) -> bool:
    return type(args[0]) is str and type(args[1]) is list and _strings(args[1])


# Functions called without JMESPath's signature machinery when their arguments are plainly
# of the types it requires (anything else goes through it, which raises its usual error):
# name -> (number of arguments, the check, the function, as Functions defines it).
_DIRECT: dict[str, tuple[int, Callable[[list[Any]], bool], Callable[..., Any]]] = {
    "split": (2, _strings, lambda text, sep: text.split(sep) if sep else list(text)),
    "join": (2, _texts_joined, lambda sep, items: sep.join(items)),
    "lower": (1, _strings, str.lower),
    "upper": (1, _strings, str.upper),
}


def _step(budget: Budget) -> None:
    budget.steps += 1
    if budget.steps > budget.max_steps:
        budget.step(0)  # raises, with the message


def _index(value: Any, index: int) -> Any:
    if not isinstance(value, list):
        return None
    try:
        return value[index]
    except IndexError:
        return None


def _chain(parts: list[Compiled], *, stop_at_null: bool = False) -> Compiled:
    def chained(value: Any, budget: Budget) -> Any:
        for part in parts:
            value = part(value, budget)
            if value is None and stop_at_null:
                return None
        return value

    return chained
