"""Contacts pages: search (email prefix, or ``ATTRIBUTE=value``), create, a contact's page with
its attributes, lists and timeline; edit, add to or remove from lists, delete and erase.

Every change goes through the contacts core exactly as the API's routes do (``crm.transaction``,
``ContactEraser``) after ``require_admin``; reads through ``crm.reader`` and the dashboard's
bounded searches (``store/dashboard_people.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from hookhub.core.contacts import normalize_attribute_name, normalize_email
from hookhub.core.pagination import decode_cursor, decode_text_cursor, encode_cursor
from hookhub.crm.erasure import ContactEraser
from hookhub.errors import HookhubError, ValidationFailed
from hookhub.records.contacts import Contact
from hookhub.services import Services
from hookhub.store.dashboard_people import (
    contacts_by_attribute,
    contacts_by_email_prefix,
    list_choices,
    list_members_page,
)
from hookhub.web.auth import require_admin
from hookhub.web.pages.contacts_timeline import timeline_page
from hookhub.web.people_common import (
    blocking,
    check_id,
    compact_json,
    error_field,
    parse_int,
    query_text,
    read_form,
    redirect,
    text,
    when,
)
from hookhub.web.render import render

router = APIRouter(include_in_schema=False)
PAGE = 50
ALL_LISTS = 500
"""Lists offered in a contact's "add to list" picker."""


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@dataclass(slots=True)
class Search:
    mode: str  # all, email, attribute
    query: str
    items: list[Contact]
    next_cursor: str | None
    note: str | None = None


def _search(services: Services, q: str, list_id: int | None, cursor: str | None) -> Search:
    with services.crm.reader() as crm:
        if list_id is not None:
            crm.require_lists([list_id])
        if "=" in q:
            name, _, value = q.partition("=")
            attribute = normalize_attribute_name(name.strip())
            found = contacts_by_attribute(
                crm.conn, attribute, value, after_id=decode_cursor(cursor)
            )
            more = encode_cursor(found.next_after) if found.next_after is not None else None
            note = (
                f"Looked at {found.scanned} contacts from this point; more may match further on."
                if more
                else None
            )
            return Search("attribute", q, found.items, more, note)
        if q:
            prefix = q.strip().lower()
            items = contacts_by_email_prefix(
                crm.conn, prefix, after_email=decode_text_cursor(cursor), limit=PAGE
            )
            more = encode_cursor(items[-1].email) if len(items) == PAGE else None
            return Search("email", q, items, more)
        after = decode_cursor(cursor)
        if list_id is not None:
            items = list_members_page(crm.conn, list_id, after_id=after, limit=PAGE)
        else:
            items = crm.contacts.page(after_id=after, limit=PAGE)
        more = encode_cursor(items[-1].id) if len(items) == PAGE else None
        return Search("all", q, items, more)


def _row(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "email": contact.email,
        "attributes": compact_json(contact.attributes, 120) if contact.attributes else "",
        "unsubscribed": contact.unsubscribed,
        "blocked": contact.email_blocked is not None,
        "created": when(contact.created_at),
    }


async def _list_page(
    request: Request, *, form: dict[str, Any] | None = None, errors: dict[str, str] | None = None
) -> Response:
    services = _services(request)
    params = request.query_params
    q = query_text(request, "q")
    list_id = parse_int(params.get("list_id"), "list_id")
    cursor = params.get("cursor")
    search_error = None
    try:
        found = await blocking(_search, services, q, list_id, cursor)
    except ValidationFailed as exc:
        search_error = exc.message
        found = Search("all", q, [], None)
    query = {k: v for k, v in (("q", q), ("list_id", list_id)) if v}
    return render(
        request,
        "contacts_list.html",
        {
            "active": "contacts",
            "search": found,
            "rows": [_row(c) for c in found.items],
            "query": query,
            "search_error": search_error,
            "form": form or {},
            "errors": errors or {},
        },
        status=422 if errors else (422 if search_error else 200),
    )


@router.get("/contacts")
async def contacts_list(request: Request) -> Response:
    return await _list_page(request)


def _parse_attributes(raw: str) -> dict[str, Any]:
    """``NAME=value`` lines (an empty value removes the attribute)."""
    found: dict[str, Any] = {}
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        if "=" not in line:
            raise ValidationFailed(
                f"Line {number}: write NAME=value.", details={"field": "attributes"}
            )
        name, _, value = line.partition("=")
        try:
            key = normalize_attribute_name(name.strip())
        except ValidationFailed as exc:
            raise ValidationFailed(
                f"Line {number}: {exc.message}", details={"field": "attributes"}
            ) from exc
        found[key] = value.strip() or None
    return found


@router.post("/contacts")
async def contacts_create(request: Request) -> Response:
    require_admin(request)
    services = _services(request)
    form = await read_form(request)

    def create() -> Contact:
        attributes = _parse_attributes(text(form, "attributes"))
        with services.crm.transaction() as crm:
            contact, _ = crm.create_contact(
                text(form, "email"),
                ext_id=text(form, "ext_id") or None,
                attributes={k: v for k, v in attributes.items() if v is not None},
                coerce=True,
            )
        return contact

    try:
        contact = await blocking(create)
    except HookhubError as exc:
        if exc.status >= 500:
            raise
        return await _list_page(request, form=form, errors={_field(exc, "email"): exc.message})
    return redirect(f"/contacts/{contact.id}")


def _field(exc: HookhubError, default: str) -> str:
    field = error_field(exc, default)
    return field if field in ("email", "ext_id", "attributes", "list_id") else default


# -- one contact ------------------------------------------------------------------------------


def _detail(services: Services, contact_id: int, cursor: str | None) -> dict[str, Any]:
    with services.crm.reader() as crm:
        contact = crm.find_contact(contact_id)
        crm.contacts.attach_list_ids([contact])
        names = crm.lists.names(contact.list_ids)
        lists = list_choices(crm.conn, ALL_LISTS)
        types = crm.attribute_types()
    timeline = timeline_page(services, contact, cursor)
    return {
        "contact": contact,
        "created": when(contact.created_at),
        "updated": when(contact.updated_at),
        "memberships": [(lid, names.get(lid, f"list #{lid}")) for lid in contact.list_ids],
        "other_lists": [(i, name) for i, name in lists if i not in set(contact.list_ids)],
        "attributes": [
            (name, value, getattr(types.get(name), "value", "string"))
            for name, value in sorted(contact.attributes.items())
        ],
        "attributes_text": "\n".join(
            f"{name}={value if isinstance(value, str) else compact_json(value)}"
            for name, value in sorted(contact.attributes.items())
        ),
        "timeline": timeline,
    }


async def _detail_page(
    request: Request,
    contact_id: int,
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
    notice: str | None = None,
) -> Response:
    check_id(contact_id)
    context = await blocking(
        _detail, _services(request), contact_id, request.query_params.get("timeline")
    )
    context.update(active="contacts", errors=errors or {}, notice=notice)
    return render(request, "contacts_detail.html", context, status=status)


@router.get("/contacts/{contact_id:int}")
async def contact_detail(request: Request, contact_id: int) -> Response:
    return await _detail_page(request, contact_id)


async def _change(request: Request, contact_id: int, field: str, work: Any) -> Response:
    """Run ``work(form)`` (one transaction); on a client's mistake show the contact again with
    the error next to ``field``."""
    require_admin(request)
    check_id(contact_id)
    form = await read_form(request)
    try:
        await blocking(work, form)
    except HookhubError as exc:
        if exc.status >= 500 or (exc.status == 404 and exc.details == {"ref": str(contact_id)}):
            raise
        return await _detail_page(
            request,
            contact_id,
            errors={field: exc.message},
            status=409 if exc.status == 409 else 422,
        )
    return redirect(f"/contacts/{contact_id}")


@router.post("/contacts/{contact_id:int}/attributes")
async def contact_attributes(request: Request, contact_id: int) -> Response:
    services = _services(request)

    def work(form: dict[str, Any]) -> None:
        changes = _parse_attributes(text(form, "attributes"))
        email = text(form, "email")
        with services.crm.transaction() as crm:
            contact = crm.find_contact(contact_id, lock=True)
            removed = {name: None for name in contact.attributes if name not in changes}
            crm.update_contact(
                contact,
                email=normalize_email(email) if email else contact.email,
                attributes={**removed, **changes},
                unsubscribed="unsubscribed" in form,
                coerce=True,
            )

    return await _change(request, contact_id, "attributes", work)


@router.post("/contacts/{contact_id:int}/lists")
async def contact_add_list(request: Request, contact_id: int) -> Response:
    services = _services(request)

    def work(form: dict[str, Any]) -> None:
        list_id = parse_int(text(form, "list_id"), "list_id")
        if list_id is None:
            raise ValidationFailed("Choose a list.", details={"field": "list_id"})
        with services.crm.transaction() as crm:
            contact = crm.find_contact(contact_id, lock=True)
            crm.update_contact(contact, add_list_ids=[list_id])

    return await _change(request, contact_id, "lists", work)


@router.post("/contacts/{contact_id:int}/lists/{list_id:int}/remove")
async def contact_remove_list(request: Request, contact_id: int, list_id: int) -> Response:
    services = _services(request)
    check_id(list_id)

    def work(_form: dict[str, Any]) -> None:
        with services.crm.transaction() as crm:
            crm.remove_from_list(list_id, crm.find_contact(contact_id, lock=True))

    return await _change(request, contact_id, "lists", work)


def _confirmed(form: dict[str, Any]) -> None:
    if text(form, "confirm") != "yes":
        raise ValidationFailed(
            "Tick the box to confirm: this cannot be undone.", details={"field": "confirm"}
        )


@router.post("/contacts/{contact_id:int}/delete")
async def contact_delete(request: Request, contact_id: int) -> Response:
    require_admin(request)
    check_id(contact_id)
    services = _services(request)
    form = await read_form(request)
    erase = text(form, "mode") == "erase"
    try:
        _confirmed(form)
    except ValidationFailed as exc:
        key = "erase" if erase else "delete"
        return await _detail_page(request, contact_id, errors={key: exc.message}, status=422)

    def work() -> None:
        if erase:
            ContactEraser(services.crm).erase(contact_id)
            return
        with services.crm.transaction() as crm:
            crm.delete_contact(crm.find_contact(contact_id, lock=True))

    await blocking(work)
    return redirect("/contacts?deleted=erased" if erase else "/contacts?deleted=1")
