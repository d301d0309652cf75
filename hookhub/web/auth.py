"""Sign-in for the dashboard: the session cookie, ``request.state.user``, ``require_admin``.

Every page router is included with :func:`authenticate` as a dependency: a request without a live
session is sent to ``/login?next=<path>`` (htmx requests get 401 and ``HX-Redirect``), a changing
request without the session's CSRF token is refused (403), and what the request causes is
recorded with the user as its origin. Handlers that change anything call :func:`require_admin`
first: viewers see everything and change nothing, checked here on the server.

The cookie holds a random token (the database keeps its SHA-256); it is ``HttpOnly``,
``SameSite=Lax`` and ``Secure`` when the request came over HTTPS. Never log a password or a token.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from hookhub.core.origin import Origin
from hookhub.outbound.outbox import request_origin
from hookhub.users import SESSION_LIFETIME, DashboardUsers, Session, User
from hookhub.web import csrf
from hookhub.web.login_limits import SignInLimiter
from hookhub.web.render import render

SESSION_COOKIE = "hookhub_session"


class SignInRequired(Exception):
    """No live session: the handler redirects to the sign-in page."""


class ViewerForbidden(Exception):
    """A viewer tried to change something: answered with a 403 page."""


def dashboard_users(request: Request) -> DashboardUsers:
    users: DashboardUsers = request.app.state.dashboard_users
    return users


def _from_trusted_proxy(request: Request) -> bool:
    networks: tuple[IPv4Network | IPv6Network, ...] = getattr(
        request.app.state, "trusted_proxies", ()
    )
    if not networks or request.client is None:
        return False
    try:
        peer = ip_address(request.client.host)
    except ValueError:
        return False
    return any(peer in network for network in networks)


def is_https(request: Request) -> bool:
    """Whether the browser's connection is HTTPS: ours, or (from a trusted proxy) the proxy's
    ``X-Forwarded-Proto``."""
    if request.url.scheme == "https":
        return True
    if _from_trusted_proxy(request):
        proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        return proto == "https"
    return False


def client_address(request: Request) -> str:
    """The browser's address: the peer, or (from a trusted proxy) the last address in
    ``X-Forwarded-For`` that is not itself a trusted proxy."""
    peer = request.client.host if request.client else "unknown"
    if not _from_trusted_proxy(request):
        return peer
    networks = request.app.state.trusted_proxies
    for hop in reversed(request.headers.get("x-forwarded-for", "").split(",")):
        hop = hop.strip()
        try:
            address = ip_address(hop)
        except ValueError:
            continue
        if not any(address in network for network in networks):
            return hop
    return peer


def safe_next(value: object) -> str:
    """A local path to go to after sign-in; anything else (another host, ``//x``) is ``/``."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//"):
        return "/"
    if "\\" in value or any(ord(c) < 32 for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def origin_of(user: User) -> Origin:
    """Outbox messages caused from the dashboard say who did it (type ``api``, no key id)."""
    return Origin("api", None, f"dashboard: {user.email}")


async def current_session(request: Request) -> Session | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    return await run_in_threadpool(dashboard_users(request).session, token)


async def authenticate(request: Request) -> User:
    """The dependency of every dashboard page (see the module's docstring)."""
    session = await current_session(request)
    if session is None:
        raise SignInRequired()
    request.state.user = session.user
    request.state.session = session
    request.state.csrf_token = session.csrf_token
    await csrf.check(request, session.csrf_token)
    request_origin.set(origin_of(session.user))
    return session.user


CurrentUser = Annotated[User, Depends(authenticate)]


def require_admin(request: Request) -> User:
    """The signed-in admin; raises :class:`ViewerForbidden` (a 403 page) for a viewer."""
    user: User | None = getattr(request.state, "user", None)
    if user is None:
        raise SignInRequired()
    if not user.is_admin:
        raise ViewerForbidden()
    return user


def sign_in_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = "/"  # a form posted after the session ended: its URL is no page to return to
    if request.headers.get("hx-request"):
        current = request.headers.get("hx-current-url")
        if current:
            parts = urlsplit(current)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
        location = f"/login?next={quote(safe_next(target), safe='')}"
        return Response(status_code=401, headers={"HX-Redirect": location})
    location = f"/login?next={quote(safe_next(target), safe='')}"
    return RedirectResponse(location, status_code=303)


# -- the sign-in and sign-out pages -------------------------------------------------------------

router = APIRouter(include_in_schema=False)


def _login_page(
    request: Request, token: str, *, next_path: str, email: str = "", error: str | None = None,
    status: int = 200,
) -> Response:
    request.state.csrf_token = token
    response = render(
        request,
        "login.html",
        {"next": next_path, "email": email, "error": error, "login_csrf": token},
        status=status,
    )
    response.set_cookie(
        csrf.LOGIN_COOKIE, token, httponly=True, samesite="lax", secure=is_https(request),
        path="/login",
    )
    return response


@router.get("/login")
async def login_form(request: Request) -> Response:
    next_path = safe_next(request.query_params.get("next", "/"))
    if await current_session(request) is not None:
        return RedirectResponse(next_path, status_code=303)
    token = request.cookies.get(csrf.LOGIN_COOKIE) or csrf.new_token()
    return _login_page(request, token, next_path=next_path)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    email = str(form.get("email") or "").strip()[:320]
    password = str(form.get("password") or "")
    next_path = safe_next(form.get("next"))
    cookie_token = request.cookies.get(csrf.LOGIN_COOKIE)
    if not csrf.same(str(form.get(csrf.FIELD) or ""), cookie_token):
        raise csrf.CsrfRefused()
    assert cookie_token is not None
    limiter: SignInLimiter = request.app.state.sign_in_limiter
    client = client_address(request)
    wait = limiter.refused(email.lower(), client)
    if wait is not None:
        request.state.csrf_token = cookie_token
        return render(
            request,
            "login.html",
            {
                "next": next_path,
                "email": email,
                "error": f"Too many sign-in attempts. Try again in {wait} seconds.",
                "login_csrf": cookie_token,
            },
            status=429,
            headers={"Retry-After": str(wait)},
        )
    users = dashboard_users(request)
    user = await run_in_threadpool(users.authenticate, email, password[:1024])
    if user is None:
        limiter.failed(email.lower(), client)
        return _login_page(
            request, cookie_token, next_path=next_path, email=email,
            error="Wrong email or password.", status=401,
        )
    limiter.succeeded(email.lower())
    token, _session = await run_in_threadpool(users.start_session, user)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=is_https(request),
        path="/",
    )
    response.delete_cookie(csrf.LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout", dependencies=[Depends(authenticate)])
async def logout(request: Request) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await run_in_threadpool(dashboard_users(request).end_session, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response
