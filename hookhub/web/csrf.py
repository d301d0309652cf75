"""CSRF checks for the dashboard: every POST/PUT/PATCH/DELETE carries the session's token.

The token travels as the form field ``csrf_token`` (plain forms: ``{{ m.csrf() }}``) or the
header ``X-CSRF-Token`` (htmx requests: ``base.html`` sets ``hx-headers`` on ``<body>``).
Before sign-in there is no session, so the sign-in form uses a double-submit cookie instead.
Comparisons are constant-time.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
HEADER = "x-csrf-token"
FIELD = "csrf_token"
LOGIN_COOKIE = "hookhub_login_csrf"


class CsrfRefused(Exception):
    """A change without the session's CSRF token: answered with a 403 page."""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same(given: str | None, expected: str | None) -> bool:
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


async def submitted_token(request: Request) -> str | None:
    """The token the request carries: the header, else the form field (the form is parsed
    once; the page reads the same parsed form)."""
    header = request.headers.get(HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(FIELD)
        return value if isinstance(value, str) else None
    return None


async def check(request: Request, expected: str) -> None:
    """Raises :class:`CsrfRefused` unless a changing request carries ``expected``."""
    if request.method in SAFE_METHODS:
        return
    if not same(await submitted_token(request), expected):
        raise CsrfRefused()
