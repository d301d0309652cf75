"""Small pieces the people pages share (contacts, lists, email templates, campaigns, emails,
automations): reading a form, naming the field an error is about, showing times, ids in paths
and opaque cursors.

Pure helpers: nothing here reads the database or decides who may do what (``auth.py`` and the
services do).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse

from hookhub.errors import BadRequest, HookhubError, NotFound, ValidationFailed

MAX_ID = 2**53 - 1
MAX_FIELD = 1024 * 1024
"""Longest form value read (a template's HTML fits)."""

T = TypeVar("T")


async def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Database work off the event loop, as the API routes do it."""
    return await run_in_threadpool(fn, *args, **kwargs)


def storable(value: str, field: str) -> str:
    """Text both databases can store (PostgreSQL refuses NUL; lone surrogates are not UTF-8),
    else a 422 naming the field, as the API's ``Text`` fields answer."""
    if "\x00" in value:
        raise ValidationFailed(
            f"{field} must not contain NUL characters.", details={"field": field}
        )
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValidationFailed(
            f"{field} must be valid Unicode.", details={"field": field}
        ) from None
    return value


def query_text(request: Request, name: str, limit: int = 320) -> str:
    """A query parameter as storable text, trimmed and cut to ``limit`` ("" when absent)."""
    return storable((request.query_params.get(name) or "").strip()[:limit], name)


async def read_form(request: Request) -> dict[str, Any]:
    """The form's fields: a field given once is a string, one given several times a list.
    Every value is storable text (a 422 otherwise)."""
    form = await request.form()
    fields: dict[str, Any] = {}
    for key in form:
        values = [v for v in form.getlist(key) if isinstance(v, str)]
        values = [storable(v[:MAX_FIELD], key) for v in values]
        if not values:
            continue
        fields[key] = values[0] if len(values) == 1 else values
    return fields


def as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def text(fields: dict[str, Any], name: str) -> str:
    """A single text field, trimmed ("" when absent)."""
    value = fields.get(name)
    if isinstance(value, list):
        value = value[0] if value else ""
    return (value or "").strip()


def check_id(value: int) -> int:
    """An id from a path: beyond what ids can be, nothing is there (never a database error)."""
    if not 1 <= value <= MAX_ID:
        raise NotFound("Nothing has this id.")
    return value


def parse_int(value: str | None, field: str) -> int | None:
    if value is None or not value.strip():
        return None
    raw = value.strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 16 or not 1 <= int(raw) <= MAX_ID:
        raise BadRequest(f"{field} must be a positive whole number.", details={"field": field})
    return int(raw)


def error_field(exc: HookhubError, default: str) -> str:
    """The form field an error is about (the services name it in ``details``)."""
    details = exc.details if isinstance(exc.details, dict) else {}
    for key in ("field", "path", "attribute"):
        value = details.get(key)
        if isinstance(value, str) and value:
            return value
    return default


def redirect(url: str) -> RedirectResponse:
    """After a change: go to the page that shows it (a GET, so a reload changes nothing)."""
    return RedirectResponse(url, status_code=303)


def when(value: datetime | float | int | None) -> dict[str, str] | None:
    """``{"iso", "text"}`` for a ``<time>`` element (UTC)."""
    if value is None:
        return None
    moment = (
        datetime.fromtimestamp(float(value), UTC)
        if isinstance(value, float | int)
        else value.astimezone(UTC)
    )
    return {
        "iso": moment.isoformat(timespec="seconds"),
        "text": moment.strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def compact_json(value: Any, limit: int = 300) -> str:
    shown = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def pretty_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def encode_state(state: dict[str, Any]) -> str:
    raw = json.dumps(state, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_state(cursor: str | None) -> dict[str, Any]:
    """A cursor this dashboard made (an empty dict for the first page); 400 otherwise."""
    if not cursor:
        return {}
    try:
        if len(cursor) > 400:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        state = json.loads(raw)
        if isinstance(state, dict):
            return state
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise BadRequest("The cursor is not one this page made.", details={"field": "cursor"})


def now() -> float:
    return datetime.now(UTC).timestamp()
