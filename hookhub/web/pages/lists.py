"""Lists pages: every list with its member count; create, rename, delete; a list's members a
page at a time, and adding contacts to it by email.

Changes go through the contacts core as the API's ``/lists`` routes do, after
``require_admin``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from hookhub.core.pagination import decode_cursor, encode_cursor
from hookhub.errors import HookhubError, NotFound, ValidationFailed
from hookhub.records.contacts import Contact, ContactList
from hookhub.services import Services
from hookhub.store.dashboard_people import list_members_page
from hookhub.web.auth import require_admin
from hookhub.web.people_common import (
    blocking,
    check_id,
    compact_json,
    read_form,
    redirect,
    text,
    when,
)
from hookhub.web.render import render

router = APIRouter(include_in_schema=False)
PAGE = 50
MAX_NAME = 255
MAX_ADD = 1000


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _name(form: dict[str, Any]) -> str:
    name = text(form, "name")
    if not name:
        raise ValidationFailed("Give the list a name.", details={"field": "name"})
    if len(name) > MAX_NAME:
        raise ValidationFailed(
            f"A name has at most {MAX_NAME} characters.", details={"field": "name"}
        )
    return name


async def _index(
    request: Request,
    *,
    form: dict[str, Any] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    services = _services(request)
    cursor = request.query_params.get("cursor")

    def load() -> list[ContactList]:
        with services.crm.reader() as crm:
            return crm.lists.page(after_id=decode_cursor(cursor), limit=PAGE)

    items = await blocking(load)
    return render(
        request,
        "lists_list.html",
        {
            "active": "lists",
            "items": [(lst, when(lst.created_at)) for lst in items],
            "next_cursor": encode_cursor(items[-1].id) if len(items) == PAGE else None,
            "form": form or {},
            "errors": {"name": error} if error else {},
        },
        status=status,
    )


@router.get("/lists")
async def lists_index(request: Request) -> Response:
    return await _index(request)


@router.post("/lists")
async def lists_create(request: Request) -> Response:
    require_admin(request)
    services = _services(request)
    form = await read_form(request)

    def create() -> ContactList:
        name = _name(form)
        with services.crm.transaction() as crm:
            return crm.lists.create(name, crm.now)

    try:
        created = await blocking(create)
    except HookhubError as exc:
        if exc.status >= 500:
            raise
        return await _index(
            request, form=form, error=exc.message, status=409 if exc.status == 409 else 422
        )
    return redirect(f"/lists/{created.id}")


def _detail(services: Services, list_id: int, cursor: str | None) -> dict[str, Any]:
    with services.crm.reader() as crm:
        found = crm.lists.get(list_id)
        if found is None:
            raise NotFound(f"No list {list_id}.", details={"list_id": list_id})
        members: list[Contact] = list_members_page(
            crm.conn, list_id, after_id=decode_cursor(cursor), limit=PAGE
        )
    return {
        "list": found,
        "created": when(found.created_at),
        "members": [
            {
                "id": c.id,
                "email": c.email,
                "attributes": compact_json(c.attributes, 120) if c.attributes else "",
            }
            for c in members
        ],
        "next_cursor": encode_cursor(members[-1].id) if len(members) == PAGE else None,
    }


async def _detail_page(
    request: Request,
    list_id: int,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
    status: int = 200,
    notice: str | None = None,
) -> Response:
    check_id(list_id)
    context = await blocking(
        _detail, _services(request), list_id, request.query_params.get("cursor")
    )
    context.update(active="lists", errors=errors or {}, form=form or {}, notice=notice)
    return render(request, "lists_detail.html", context, status=status)


@router.get("/lists/{list_id:int}")
async def list_detail(request: Request, list_id: int) -> Response:
    return await _detail_page(request, list_id)


@router.post("/lists/{list_id:int}/rename")
async def list_rename(request: Request, list_id: int) -> Response:
    require_admin(request)
    check_id(list_id)
    services = _services(request)
    form = await read_form(request)

    def rename() -> None:
        name = _name(form)
        with services.crm.transaction() as crm:
            if crm.lists.get(list_id) is None:
                raise NotFound(f"No list {list_id}.", details={"list_id": list_id})
            crm.lists.rename(list_id, name)

    try:
        await blocking(rename)
    except (ValidationFailed, HookhubError) as exc:
        if exc.status not in (409, 422):
            raise
        return await _detail_page(
            request, list_id, errors={"name": exc.message}, form=form, status=exc.status
        )
    return redirect(f"/lists/{list_id}")


@router.post("/lists/{list_id:int}/members")
async def list_add_members(request: Request, list_id: int) -> Response:
    """Add contacts by email (one per line, or separated by commas): all of them or none."""
    require_admin(request)
    check_id(list_id)
    services = _services(request)
    form = await read_form(request)
    emails = [e.strip() for e in text(form, "emails").replace(",", "\n").splitlines()]
    emails = [e for e in emails if e]

    def add() -> dict[str, list[int]]:
        if not emails:
            raise ValidationFailed("Give at least one email.", details={"field": "emails"})
        if len(emails) > MAX_ADD:
            raise ValidationFailed(
                f"At most {MAX_ADD} emails at once.", details={"field": "emails"}
            )
        with services.crm.transaction() as crm:
            return crm.add_contacts_to_list(list_id, emails=emails)

    try:
        result = await blocking(add)
    except HookhubError as exc:
        if exc.status >= 500 or (exc.status == 404 and "list_id" in (exc.details or {})):
            raise
        message = exc.message
        missing = (exc.details or {}).get("emails") if isinstance(exc.details, dict) else None
        if missing:
            message = f"{message} Unknown: {', '.join(missing[:20])}."
        return await _detail_page(
            request, list_id, errors={"emails": message}, form=form, status=422
        )
    notice = f"Added {len(result['added'])}; {len(result['already_members'])} already members."
    return await _detail_page(request, list_id, notice=notice)


@router.post("/lists/{list_id:int}/delete")
async def list_delete(request: Request, list_id: int) -> Response:
    require_admin(request)
    check_id(list_id)
    services = _services(request)
    form = await read_form(request)
    if text(form, "confirm") != "yes":
        return await _detail_page(
            request,
            list_id,
            errors={"delete": "Tick the box to confirm: this cannot be undone."},
            status=422,
        )

    def delete() -> None:
        with services.crm.transaction() as crm:
            crm.delete_list(list_id)

    await blocking(delete)
    return redirect("/lists")
