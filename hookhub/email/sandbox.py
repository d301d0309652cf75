"""The Jinja2 environment of email templates: the immutable sandbox, with bounds on size and work.

Jinja's sandbox stops a template from reaching Python internals, but not from building a huge
string (``"x" * 10**9``, ``s|replace("", s)``, a doubling loop) or spinning in nested loops. Here
every value a template builds is bounded (:data:`MAX_VALUE_CHARS`) before or right after it is
made, every rendered part is bounded (:data:`MAX_PART_CHARS`) and loops share a per-render budget
(:data:`MAX_LOOP_STEPS`). Mappings prefer their keys to their methods (``params.items`` is the
``items`` value, not ``dict.items``), and a missing value renders empty, even chained.

This module must never evaluate anything outside the sandbox, and its checks must stay cheap:
campaigns render tens of thousands of emails a second through it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

from jinja2 import ChainableUndefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import pass_context
from jinja2.visitor import NodeTransformer

MAX_PART_CHARS = 2 * 1024 * 1024
MAX_VALUE_CHARS = MAX_PART_CHARS
MAX_LOOP_STEPS = 100_000
_CONCAT_BATCH = 16
_BIG_WIDTH = re.compile(r"\d{7,}")  # a format width or precision of a million or more
_STEPS = "_hookhub_loop_steps"


class DataOnly(dict[str, Any]):
    """A mapping whose attributes are only its data: ``x.items`` is a value or nothing."""

    __slots__ = ()


class LimitExceeded(SecurityError):
    """A template tried to build more than the bounds allow."""


def _too_big(size: int) -> LimitExceeded:
    return LimitExceeded(
        f"the template builds a value of {size} characters (at most {MAX_VALUE_CHARS})"
    )


def _check_size(value: Any) -> Any:
    if isinstance(value, str | list | tuple) and len(value) > MAX_VALUE_CHARS:
        raise _too_big(len(value))
    return value


def _check_int(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_VALUE_CHARS:
        raise LimitExceeded(f"the number {value} is too large for this operation")


def _check_format(text: Any) -> None:
    if isinstance(text, str) and _BIG_WIDTH.search(text):
        raise LimitExceeded("a format width or precision is too large")


def _sized(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple) else 0


def bounded_concat(parts: Iterable[str]) -> str:
    """``"".join`` that stops once the output passes :data:`MAX_PART_CHARS`.

    Counted a batch at a time (C-level ``sum``/``map``): a batch holds at most
    :data:`_CONCAT_BATCH` pieces, each already bounded by :data:`MAX_VALUE_CHARS`.
    """
    pieces = iter(parts)
    out: list[str] = []
    total = 0
    while True:
        batch = list(islice(pieces, _CONCAT_BATCH))
        if not batch:
            return "".join(out)
        total += sum(map(len, batch))
        if total > MAX_PART_CHARS:
            raise LimitExceeded(f"the rendered part is larger than {MAX_PART_CHARS} characters")
        out += batch


@pass_context
def _guard_loop(context: Context, iterable: Any) -> Iterator[Any]:
    steps: int = getattr(context, _STEPS, 0)
    for item in iterable:
        steps += 1
        if steps > MAX_LOOP_STEPS:
            raise LimitExceeded(f"the template's loops ran more than {MAX_LOOP_STEPS} times")
        setattr(context, _STEPS, steps)
        yield item


def _bounded_join(value: Any, d: str = "", attribute: Any = None) -> Any:
    items = list(value)
    if len(items) > MAX_LOOP_STEPS:
        raise LimitExceeded("join: too many items")
    estimate = sum(len(str(item)) for item in items) + len(str(d)) * len(items)
    if estimate > MAX_VALUE_CHARS:
        raise _too_big(estimate)
    return items, d, attribute


class _Bounds(NodeTransformer):
    """Loops count their steps; ``~`` concatenations are checked for size."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Call(
            nodes.EnvironmentAttribute("hookhub_guard_loop"), [node.iter], [], None, None
        )
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Call(nodes.EnvironmentAttribute("hookhub_check_size"), [node], [], None, None)


_SIZED_BY_INT_FILTERS = frozenset({"center", "indent", "slice", "batch", "wordwrap", "truncate"})
_SIZED_BY_INT_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


def _wrap_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    pass_arg = getattr(func, "jinja_pass_arg", None)
    check_ints = name in _SIZED_BY_INT_FILTERS

    def bounded(*args: Any, **kwargs: Any) -> Any:
        plain = args[1:] if pass_arg is not None else args
        if check_ints:
            for arg in (*plain, *kwargs.values()):
                _check_int(arg)
        elif name == "replace" and len(plain) >= 3:
            estimate = len(str(plain[0])) * (1 + _sized(plain[2])) + _sized(plain[2])
            if estimate > MAX_VALUE_CHARS:
                raise _too_big(estimate)
        elif name == "format" and plain:
            _check_format(plain[0])
        return _check_size(func(*args, **kwargs))

    if pass_arg is not None:
        bounded.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
    return bounded


class EmailEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox with Hookhub's bounds; one per process (it holds no per-render state)."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, *, autoescape: bool) -> None:
        super().__init__(
            autoescape=autoescape,
            undefined=ChainableUndefined,
            trim_blocks=False,
            keep_trailing_newline=True,
            auto_reload=False,
            cache_size=0,
        )
        self.concat = bounded_concat  # type: ignore[method-assign]
        self.hookhub_guard_loop = _guard_loop
        self.hookhub_check_size = _check_size
        for name, func in list(self.filters.items()):
            self.filters[name] = _wrap_filter(name, func)
        original_join = self.filters["join"]

        def join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> Any:
            items, d, attribute = _bounded_join(value, d, attribute)
            return original_join(eval_ctx, items, d, attribute)

        join.jinja_pass_arg = original_join.jinja_pass_arg  # type: ignore[attr-defined]
        self.filters["join"] = join

    def bounded_tree(self, source: str) -> nodes.Template:
        tree = self.parse(source)
        bounded = _Bounds().visit(tree)
        assert isinstance(bounded, nodes.Template)
        return bounded

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, dict):
            try:
                return obj[attribute]
            except KeyError:
                if isinstance(obj, DataOnly):
                    return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        """Reaching for an unsafe attribute fails the render (Jinja's default renders it empty)."""
        raise SecurityError(f"access to attribute {attribute!r} is not allowed in templates")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            if isinstance(left, str | list | tuple) or isinstance(right, str | list | tuple):
                count = right if isinstance(right, int) else left
                other = left if isinstance(right, int) else right
                if isinstance(count, int) and _sized(other) * count > MAX_VALUE_CHARS:
                    raise _too_big(_sized(other) * count)
            return left * right
        if operator == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and abs(left) > 1
                and right * abs(left).bit_length() > 64_000
            ):
                raise LimitExceeded("the power is too large")
            return left**right
        if operator == "%":
            if isinstance(left, str):
                _check_format(left)
                for value in right if isinstance(right, tuple) else (right,):
                    _check_int(value)
            return _check_size(left % right)
        if _sized(left) + _sized(right) > MAX_VALUE_CHARS:
            raise _too_big(_sized(left) + _sized(right))
        return left + right

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        method = getattr(__obj, "__wrapped__", __obj)  # str.format arrives wrapped by the sandbox
        owner = getattr(method, "__self__", None)
        if isinstance(owner, str):
            name = getattr(method, "__name__", "")
            if name in _SIZED_BY_INT_METHODS:
                for arg in (*args, *kwargs.values()):
                    _check_int(arg)
            elif name in {"format", "format_map"}:
                _check_format(owner)
            elif name == "replace" and len(args) >= 2:
                estimate = len(owner) * (1 + _sized(args[1])) + _sized(args[1])
                if estimate > MAX_VALUE_CHARS:
                    raise _too_big(estimate)
            elif name == "join" and args:
                items = list(args[0])
                estimate = sum(map(_sized, items)) + len(owner) * len(items)
                if estimate > MAX_VALUE_CHARS:
                    raise _too_big(estimate)
                args = (items, *args[1:])
        return _check_size(super().call(__context, __obj, *args, **kwargs))
