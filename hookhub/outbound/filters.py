"""Endpoint filters: a JMESPath expression over the message decides whether it is delivered.

A filter is compiled and checked when the endpoint is saved (a 422 naming the error), and
compiled again at most once per process for fan-out (cached by its text). Evaluating one is
bounded like inbound rules are (``hookhub.inbound.rule_expressions``).

What this module must never do: raise out of :func:`matches` (a filter that fails on a message
means "not matching", logged; it must never fail the writer's transaction).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from hookhub.core.expressions import is_truthy
from hookhub.errors import ValidationFailed
from hookhub.inbound.rule_expressions import Expression, compile_expression

__all__ = ["compiled_filter", "matches", "validate_filter"]

log = logging.getLogger("hookhub.fanout")


def validate_filter(value: Any) -> str | None:
    """The filter to store (None: every message of the endpoint's types), or a 422."""
    if value is None or value == "":
        return None
    try:
        compile_expression(value, "filter")
    except ValidationFailed as exc:
        raise ValidationFailed(
            exc.message, details={**(exc.details or {}), "field": "filter"}
        ) from exc
    assert isinstance(value, str)
    return value


@functools.lru_cache(maxsize=4096)
def compiled_filter(source: str) -> Expression:
    return compile_expression(source, "filter")


def matches(source: str, message: Any, *, webhook_id: int, message_id: str) -> bool:
    """Whether ``message`` (the parsed body) passes the filter; an error is "no"."""
    try:
        return is_truthy(compiled_filter(source).search(message))
    except Exception as exc:
        log.warning(
            "fanout.filter_failed",
            extra={"webhook_id": webhook_id, "message_id": message_id, "error": str(exc)[:300]},
        )
        return False
