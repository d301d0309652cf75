"""Settings: API keys (list, create showing the key once, revoke) and dashboard users (list,
create, change role, disable or enable).

Keys go through ``hookhub.keys.ApiKeys`` (``services.keys``), as ``hookhub keys`` does; users
through ``hookhub.users.DashboardUsers``, as ``hookhub users`` does. Everyone signed in sees
both lists (key prefixes only: a key is shown once, when it is made); every change calls
``require_admin`` first.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from hookhub.api.schemas import MAX_ID
from hookhub.errors import Conflict, NotFound, ValidationFailed
from hookhub.keys import ApiKeys, Scope
from hookhub.services import Services
from hookhub.users import DashboardUsers, Role
from hookhub.web.auth import dashboard_users, require_admin
from hookhub.web.render import render

router = APIRouter()

MAX_KEY_NAME = 200
NOTICES = {
    "key-revoked": "The key was revoked; requests using it now fail.",
    "user-created": "The user was created; they can sign in now.",
    "user-updated": "The user was updated.",
}
SCOPE_HELP = {
    Scope.READ: "read: GET only, never secrets",
    Scope.WRITE: "write: reads and changes, no secrets, no keys",
    Scope.ADMIN: "admin: everything",
}


def _keys(request: Request) -> ApiKeys:
    services: Services = request.app.state.services
    return services.keys


def _field(form: Any, name: str, limit: int = 1024) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


async def _page(
    request: Request,
    *,
    status: int = 200,
    new_key: str | None = None,
    key_form: dict[str, Any] | None = None,
    user_form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    error: str | None = None,
) -> Response:
    keys = await run_in_threadpool(_keys(request).list)
    users = await run_in_threadpool(dashboard_users(request).list)
    notice = NOTICES.get(request.query_params.get("done", ""))
    return render(
        request,
        "settings.html",
        {
            "keys": sorted(keys, key=lambda k: (k.revoked_at is not None, -k.id)),
            "users": users,
            "new_key": new_key,
            "key_form": key_form or {"name": "", "scope": Scope.WRITE.value},
            "user_form": user_form or {"email": "", "role": Role.VIEWER.value},
            "errors": errors or {},
            "error": error,
            "notice": notice,
            "scopes": [(s.value, SCOPE_HELP[s]) for s in Scope],
            "roles": [(Role.VIEWER.value, "viewer: sees everything, changes nothing"),
                      (Role.ADMIN.value, "admin: sees and changes everything")],
            "active": "settings",
        },
        status=status,
    )


def _known(value: int, what: str) -> int:
    """An id from the path: beyond what ids can be, nothing is there (never a database error)."""
    if not 1 <= value <= MAX_ID:
        raise NotFound(f"No {what} {value}.")
    return value


def _done(what: str) -> Response:
    return RedirectResponse(f"/settings?done={what}", status_code=303)


@router.get("/settings")
async def settings_page(request: Request) -> Response:
    return await _page(request)


@router.post("/settings/keys")
async def create_key(request: Request) -> Response:
    require_admin(request)
    form = await request.form()
    name = _field(form, "name", MAX_KEY_NAME + 1)
    scope_value = _field(form, "scope")
    key_form = {"name": name, "scope": scope_value}
    errors = {}
    if not name:
        errors["name"] = "Give the key a name (what it is for)."
    elif len(name) > MAX_KEY_NAME:
        errors["name"] = f"A name has at most {MAX_KEY_NAME} characters."
    try:
        scope = Scope(scope_value)
    except ValueError:
        errors["scope"] = "Choose read, write or admin."
    if errors:
        return await _page(request, status=422, key_form=key_form, errors=errors)
    _info, key = await run_in_threadpool(lambda: _keys(request).create(name, scope=scope))
    # Shown once, in this answer only; never stored (only its hash) and never logged.
    response = await _page(request, status=201, new_key=key)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/settings/keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: int) -> Response:
    require_admin(request)
    try:
        await run_in_threadpool(_keys(request).revoke, _known(key_id, "API key"))
    except NotFound as exc:
        return await _page(request, status=404, error=exc.message)
    return _done("key-revoked")


@router.post("/settings/users")
async def create_user(request: Request) -> Response:
    require_admin(request)
    form = await request.form()
    email = _field(form, "email", 320)
    role = _field(form, "role")
    password = form.get("password")
    again = form.get("password_again")
    user_form = {"email": email, "role": role}
    password = password if isinstance(password, str) else ""
    if password != (again if isinstance(again, str) else ""):
        return await _page(
            request, status=422, user_form=user_form,
            errors={"password_again": "The two passwords differ."},
        )
    users: DashboardUsers = dashboard_users(request)
    try:
        await run_in_threadpool(users.create, email, password, role)
    except ValidationFailed as exc:
        details = exc.details if isinstance(exc.details, dict) else {}
        field = str(details.get("field") or "role")
        return await _page(request, status=422, user_form=user_form, errors={field: exc.message})
    except Conflict as exc:
        return await _page(request, status=409, user_form=user_form, errors={"email": exc.message})
    return _done("user-created")


async def _change_user(request: Request, user_id: int, change: Any) -> Response:
    require_admin(request)
    try:
        _known(user_id, "user")
        await run_in_threadpool(change)
    except NotFound as exc:
        return await _page(request, status=404, error=exc.message)
    except (Conflict, ValidationFailed) as exc:
        return await _page(request, status=exc.status, error=exc.message)
    return _done("user-updated")


@router.post("/settings/users/{user_id}/role")
async def change_role(request: Request, user_id: int) -> Response:
    require_admin(request)
    role = _field(await request.form(), "role")
    users = dashboard_users(request)
    return await _change_user(request, user_id, lambda: users.set_role(user_id, role))


@router.post("/settings/users/{user_id}/disable")
async def disable_user(request: Request, user_id: int) -> Response:
    users = dashboard_users(request)
    return await _change_user(request, user_id, lambda: users.set_disabled(user_id, True))


@router.post("/settings/users/{user_id}/enable")
async def enable_user(request: Request, user_id: int) -> Response:
    users = dashboard_users(request)
    return await _change_user(request, user_id, lambda: users.set_disabled(user_id, False))
