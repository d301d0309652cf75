"""Wires the dashboard into the FastAPI app: pages, static files, sign-in, HTML error pages.

:func:`install_dashboard` includes every page module's ``router`` (any module of
``hookhub.web.pages`` with a ``router`` attribute), each behind ``auth.authenticate``
(sign-in, CSRF, the user as origin) and out of the OpenAPI document; mounts ``/static`` with long
cache lives (URLs carry a hash of the file, see ``render.static_url``); and answers errors on
dashboard paths with HTML pages. The API (``/api/v1``), the receive path, tracking, health,
metrics and the API docs keep their JSON answers.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from collections.abc import Awaitable, Callable
from ipaddress import ip_network
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from hookhub.users import DashboardUsers
from hookhub.web import auth, csrf, pages
from hookhub.web.login_limits import SignInLimiter
from hookhub.web.render import STATIC_DIR, render

NOT_DASHBOARD = ("/api/", "/in/", "/t/", "/healthz", "/readyz", "/metrics", "/docs", "/openapi")
"""Path prefixes whose errors stay JSON (the API and the machine-facing endpoints)."""

_TITLES = {
    400: "Bad request",
    401: "Sign-in required",
    403: "Not allowed",
    404: "Page not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    422: "Invalid input",
    429: "Too many requests",
    503: "Unavailable",
}

Handler = Callable[[Request, Any], Response | Awaitable[Response]]


class CachedStaticFiles(StaticFiles):
    """Static files with a year's cache life: their URLs change when their bytes do."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


def is_dashboard_path(path: str) -> bool:
    return path != "/api" and not path.startswith(NOT_DASHBOARD)


def page_routers() -> list[APIRouter]:
    """The ``router`` of every module in ``hookhub.web.pages``, in module-name order."""
    found = []
    for info in sorted(pkgutil.iter_modules(pages.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{pages.__name__}.{info.name}")
        router = getattr(module, "router", None)
        if isinstance(router, APIRouter):
            found.append(router)
    return found


def install_dashboard(app: FastAPI, services: Any) -> None:
    app.state.dashboard_users = DashboardUsers(services.db)
    app.state.sign_in_limiter = SignInLimiter()
    app.state.trusted_proxies = tuple(
        ip_network(cidr, strict=False) for cidr in services.settings.trusted_proxies
    )
    app.include_router(auth.router, include_in_schema=False)
    for router in page_routers():
        app.include_router(
            router, include_in_schema=False, dependencies=[Depends(auth.authenticate)]
        )
    app.mount("/static", CachedStaticFiles(directory=str(STATIC_DIR)), name="static")
    _install_error_pages(app)


async def _who(request: Request) -> None:
    """On an error before the sign-in check ran (an unknown path), the page still shows the
    nav to a signed-in user; if the session cannot be read, the page goes without."""
    if getattr(request.state, "user", None) is not None:
        return
    if auth.SESSION_COOKIE not in request.cookies:
        return
    try:
        session = await auth.current_session(request)
    except Exception:  # the database away: the error page matters more than the nav
        return
    if session is not None:
        request.state.user = session.user
        request.state.csrf_token = session.csrf_token


async def error_page(request: Request, status: int, message: str) -> Response:
    await _who(request)
    title = _TITLES.get(status, "Error" if status < 500 else "Something went wrong")
    return render(request, "errors.html", {"status": status, "title": title, "message": message},
                  status=status)


def _install_error_pages(app: FastAPI) -> None:
    async def sign_in_required(request: Request, _exc: Exception) -> Response:
        return auth.sign_in_redirect(request)

    async def viewer_forbidden(request: Request, _exc: Exception) -> Response:
        return await error_page(request, 403, "Viewers cannot change anything.")

    async def csrf_refused(request: Request, _exc: Exception) -> Response:
        return await error_page(
            request, 403,
            "The form was stale or incomplete (its CSRF token did not match). Reload the page"
            " and try again.",
        )

    app.add_exception_handler(auth.SignInRequired, sign_in_required)
    app.add_exception_handler(auth.ViewerForbidden, viewer_forbidden)
    app.add_exception_handler(csrf.CsrfRefused, csrf_refused)
    # The API's handlers decide the status (and log); on dashboard paths the answer becomes a page.
    for key, handler in list(app.exception_handlers.items()):
        if key in (auth.SignInRequired, auth.ViewerForbidden, csrf.CsrfRefused):
            continue
        app.exception_handlers[key] = _as_page(handler)


def _as_page(handler: Handler) -> Handler:
    async def answer(request: Request, exc: Any) -> Response:
        answered = handler(request, exc)
        response = await answered if inspect.isawaitable(answered) else answered
        if not is_dashboard_path(request.url.path):
            return response
        message = "Something went wrong."
        try:
            body = json.loads(bytes(response.body))
            message = str(body["error"]["message"])
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
        if response.status_code >= 500 and response.status_code != 503:
            message = "Something went wrong on our side; it has been logged."
        page = await error_page(request, response.status_code, message)
        for name in ("allow", "retry-after"):
            if name in response.headers:
                page.headers[name] = response.headers[name]
        return page

    return answer
