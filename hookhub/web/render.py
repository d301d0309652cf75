"""Renders dashboard templates (Jinja2, autoescaped) into HTML responses.

Every template gets ``request``, ``user`` (the signed-in user, or None on the sign-in and error
pages), ``csrf_token``, ``is_admin``, ``active`` (the nav section, from the path unless given) and
``static(name)`` (a cache-busting URL of a file in ``static/``), plus the page's context.
"""

from __future__ import annotations

import functools
import hashlib
from contextvars import ContextVar
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader
from starlette.requests import Request
from starlette.responses import HTMLResponse

STATIC_DIR = resources.files("hookhub.web") / "static"
_rendering_csrf: ContextVar[str] = ContextVar("hookhub_rendering_csrf", default="")

SECTIONS = (
    ("overview", "/", "Overview"),
    ("contacts", "/contacts", "Contacts"),
    ("lists", "/lists", "Lists"),
    ("inbound", "/inbound", "Inbound"),
    ("outbound", "/outbound", "Outbound"),
    ("templates", "/templates", "Templates"),
    ("campaigns", "/campaigns", "Campaigns"),
    ("emails", "/emails", "Emails"),
    ("automations", "/automations", "Automations"),
    ("settings", "/settings", "Settings"),
)
"""The nav: (section, path, label). ``active`` is the section of the request's first segment."""


@functools.cache
def static_url(name: str) -> str:
    """``/static/<name>?v=<hash of its bytes>``: the files are served with a long cache life."""
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]
    return f"/static/{name}?v={digest}"


@functools.cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("hookhub.web", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static"] = static_url
    env.globals["current_csrf_token"] = _rendering_csrf.get
    env.filters["epoch"] = lambda seconds: datetime.fromtimestamp(float(seconds), UTC)
    env.globals["sections"] = SECTIONS
    return env


def section_of(path: str) -> str:
    first = path.strip("/").split("/", 1)[0]
    return first or "overview"


def template_context(request: Request, context: dict[str, Any] | None = None) -> dict[str, Any]:
    user = getattr(request.state, "user", None)
    values: dict[str, Any] = {
        "request": request,
        "user": user,
        "csrf_token": getattr(request.state, "csrf_token", ""),
        "is_admin": bool(user is not None and user.is_admin),
        "active": section_of(request.url.path),
    }
    values.update(context or {})
    return values


def render_text(request: Request, name: str, context: dict[str, Any] | None = None) -> str:
    values = template_context(request, context)
    # Macros imported without the context still find the token (``_macros.html``'s csrf()).
    token = _rendering_csrf.set(str(values.get("csrf_token") or ""))
    try:
        return environment().get_template(name).render(values)
    finally:
        _rendering_csrf.reset(token)


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """The template ``name`` as an HTML response (``status``, extra ``headers``)."""
    return HTMLResponse(render_text(request, name, context), status_code=status, headers=headers)
