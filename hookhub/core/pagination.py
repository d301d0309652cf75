"""Opaque cursors for keyset pagination: a cursor names the last item of the previous page."""

from __future__ import annotations

import base64
import binascii

from hookhub.errors import BadRequest

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


def encode_cursor(last_key: int | str) -> str:
    raw = f"{type(last_key).__name__[0]}:{last_key}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The integer key a cursor names (None for the first page)."""
    value = _decode(cursor, int)
    return value if isinstance(value, int) else None


def decode_text_cursor(cursor: str | None) -> str | None:
    """The text key a cursor names (None for the first page)."""
    value = _decode(cursor, str)
    return value if isinstance(value, str) else None


def _decode(cursor: str | None, kind: type[int] | type[str]) -> int | str | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, _, value = raw.partition(":")
        if kind is int and tag == "i":
            number = int(value)
            if 0 <= number < 2**63:
                return number
        elif kind is str and tag == "s" and value and "\x00" not in value:
            return value  # (a NUL would reach PostgreSQL, which refuses it even in comparisons)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise BadRequest("The cursor is not one this API returned.", details={"field": "cursor"})


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}.", details={"field": "limit"})
    return limit
