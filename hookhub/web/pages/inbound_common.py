"""What the webhook pages (inbound and outbound) share: form parsing, errors next to fields.

A form's problem is a :class:`FormErrors` (field name -> message) that the page re-renders
with a 422; a service's ``ValidationFailed`` is mapped onto the form field its details name.
What this module must never do: call a service or hold a webhook rule of its own (the
services check every value, as they do for the API and the CLI).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request

from hookhub.core.pagination import decode_cursor
from hookhub.errors import BadRequest, ValidationFailed
from hookhub.services import Services

T = TypeVar("T")
PAGE = 50
FORM_LEVEL = "_form"


class FormErrors(dict[str, str]):
    """Messages by form field; ``FORM_LEVEL`` for one that belongs to no field."""

    def add(self, field: str, message: str) -> None:
        self.setdefault(field, message)


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking service call off the event loop (as the API's sync routes are)."""
    return await run_in_threadpool(fn, *args, **kwargs)


async def read_form(request: Request) -> FormData:
    """The request's form; a field with a NUL character is refused (422) as the API's schemas
    refuse it: PostgreSQL cannot store one, and SQLite would keep it where no one expects it."""
    form = await request.form()
    for name, value in form.multi_items():
        if isinstance(value, str) and "\x00" in value:
            raise ValidationFailed(
                f"The field {name[:40]!r} contains a NUL character.", details={"field": name[:40]}
            )
    return form


def text_field(form: FormData, name: str, *, limit: int = 100_000) -> str:
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    return value.strip()[:limit]


def field_of(exc: ValidationFailed, known: Iterable[str]) -> str:
    """The form field a service's validation error names (``FORM_LEVEL`` when none)."""
    details: Mapping[str, Any] = exc.details or {}
    named = str(details.get("field") or details.get("path") or "")
    for field in known:
        if named == field or named.startswith((f"{field}.", f"{field}[")):
            return field
    return FORM_LEVEL


def parse_json(text: str, field: str, errors: FormErrors, *, default: Any = None) -> Any:
    """``text`` parsed as JSON (``default`` when empty); a syntax error is added to ``errors``."""
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError as exc:
        errors.add(field, f"Not valid JSON: {exc}")
    except RecursionError:
        errors.add(field, "Nested too deeply.")
    return default


def parse_local_time(text: str, field: str, errors: FormErrors) -> datetime | None:
    """A ``datetime-local`` or ISO 8601 value (UTC unless it says otherwise), or None."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: an offset past year 1 or 9999
        errors.add(field, "Give a date and time such as 2026-12-03T17:30.")
        return None


def cursor_of(request: Request) -> int | None:
    """The page cursor of the query string; an unreadable one is a 400 like the API's."""
    return decode_cursor(request.query_params.get("cursor") or None)


def optional_choice(value: str | None, choices: Iterable[str], field: str) -> str | None:
    """A filter value from a fixed set (empty: no filter); another one is a 400."""
    if not value:
        return None
    if value not in set(choices):
        raise BadRequest(f"Unknown {field} {value!r}.", details={"field": field})
    return value


def show_time(value: float | str | datetime | None) -> str:
    """A time as pages show it: UTC, to the second."""
    if value is None or value == "":
        return "-"
    moment: datetime
    if isinstance(value, (int, float)):
        moment = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        moment = value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pretty_json(value: Any) -> str:
    """A JSON value indented for reading (escaped by the template, as everything is)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def pretty_body(text: str | None) -> str:
    """A logged body: indented when it is JSON, as received otherwise."""
    if text is None:
        return ""
    try:
        return pretty_json(json.loads(text))
    except (ValueError, RecursionError):  # not JSON, or nested past what can be indented
        return text


def query_string(params: Mapping[str, Any]) -> str:
    """Non-empty ``params`` as a query string (filters kept across pages)."""
    from urllib.parse import urlencode

    return urlencode({k: v for k, v in params.items() if v not in (None, "")})
