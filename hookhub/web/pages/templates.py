"""Email template pages: the list, the editor (subject, HTML, text) with a live preview, save,
send a test email, delete.

The preview renders the draft with the same sandboxed template service the API's preview uses
(:meth:`TemplateService.preview_draft`), for sample contact data or a real contact, and is shown
in a sandboxed ``<iframe srcdoc>``: the email's HTML never runs in the dashboard's page. Saving
goes through :class:`TemplateService` (refused unless it compiles) and a test email through
:class:`EmailService`, as ``POST /emails`` does, after ``require_admin``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from hookhub.core.contacts import normalize_email
from hookhub.core.pagination import decode_cursor, encode_cursor
from hookhub.email.service import EmailService, SendRequest
from hookhub.email.template_service import TemplateService
from hookhub.email.templates import MAX_SOURCE_CHARS, RenderedEmail
from hookhub.errors import HookhubError, ValidationFailed
from hookhub.records.email_templates import StoredTemplate
from hookhub.services import Services
from hookhub.web.auth import require_admin
from hookhub.web.people_common import (
    blocking,
    check_id,
    error_field,
    read_form,
    redirect,
    text,
    when,
)
from hookhub.web.render import render

router = APIRouter(include_in_schema=False)
PAGE = 50
SAMPLE_CONTACT: dict[str, Any] = {
    "id": 0,
    "email": "ann.example@example.com",
    "ext_id": None,
    "attributes": {"FIRSTNAME": "Ann", "LASTNAME": "Example", "PLAN": "pro"},
    "list_ids": [],
    "unsubscribed": False,
}
"""Whom the editor's preview renders for unless a real contact is named."""
FIELDS = ("name", "subject", "html", "text")


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _templates(services: Services) -> TemplateService:
    return TemplateService(services.crm, services.settings.base_url)


def _draft(form: dict[str, Any]) -> dict[str, Any]:
    """The editor's fields, checked as the API's request body is."""
    name, subject, html = text(form, "name"), text(form, "subject"), form.get("html") or ""
    if not isinstance(html, str):
        html = html[0]
    body = form.get("text") or ""
    if not isinstance(body, str):
        body = body[0]
    if not name or len(name) > 255:
        raise ValidationFailed("A name of 1 to 255 characters.", details={"field": "name"})
    if not subject or len(subject) > 2000:
        raise ValidationFailed("A subject of 1 to 2000 characters.", details={"field": "subject"})
    if not html.strip() or len(html) > MAX_SOURCE_CHARS:
        raise ValidationFailed(
            f"HTML of 1 to {MAX_SOURCE_CHARS} characters.", details={"field": "html"}
        )
    if len(body) > MAX_SOURCE_CHARS:
        raise ValidationFailed(
            f"Text of at most {MAX_SOURCE_CHARS} characters.", details={"field": "text"}
        )
    return {"name": name, "subject": subject, "html": html, "text": body if body.strip() else None}


@router.get("/templates")
async def templates_index(request: Request) -> Response:
    services = _services(request)
    cursor = request.query_params.get("cursor")
    items: list[StoredTemplate] = await blocking(
        _templates(services).page, after_id=decode_cursor(cursor), limit=PAGE
    )
    return render(
        request,
        "templates_list.html",
        {
            "active": "templates",
            "items": [(t, when(t.updated_at)) for t in items],
            "next_cursor": encode_cursor(items[-1].id) if len(items) == PAGE else None,
        },
    )


def _preview(
    services: Services, source: dict[str, Any], contact: str | None
) -> tuple[RenderedEmail | None, str | None]:
    try:
        rendered = _templates(services).preview_draft(
            source, contact=contact or None, sample=SAMPLE_CONTACT, params={}
        )
    except ValidationFailed as exc:
        return None, exc.message
    return rendered, None


def _editor(
    request: Request,
    template: StoredTemplate | None,
    values: dict[str, Any],
    preview: tuple[RenderedEmail | None, str | None],
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
    notice: str | None = None,
    sent: dict[str, Any] | None = None,
) -> Response:
    rendered, problem = preview
    return render(
        request,
        "templates_edit.html",
        {
            "active": "templates",
            "template": template,
            "values": values,
            "preview": rendered,
            "preview_error": problem,
            "preview_contact": "",
            "errors": errors or {},
            "notice": notice,
            "sent": sent,
        },
        status=status,
    )


@router.get("/templates/new")
async def template_new(request: Request) -> Response:
    values = {
        "name": "",
        "subject": "Hello {{ contact.FIRSTNAME }}",
        "html": "<p>Hello {{ contact.FIRSTNAME or 'there' }},</p>\n"
        '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>',
        "text": "",
    }
    preview = await blocking(_preview, _services(request), values, None)
    return _editor(request, None, values, preview)


@router.post("/templates")
async def template_create(request: Request) -> Response:
    require_admin(request)
    services = _services(request)
    form = await read_form(request)
    try:
        fields = _draft(form)
        created = await blocking(_templates(services).create, fields)
    except HookhubError as exc:
        if exc.status >= 500:
            raise
        values = {k: form.get(k, "") for k in FIELDS}
        preview = await blocking(_preview, services, values, None)
        return _editor(
            request, None, values, preview, errors={_field(exc): exc.message}, status=422
        )
    return redirect(f"/templates/{created.id}")


def _field(exc: HookhubError) -> str:
    field = error_field(exc, "html")
    return field if field in FIELDS else "html"


async def _edit_page(
    request: Request,
    template_id: int,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
    notice: str | None = None,
    sent: dict[str, Any] | None = None,
) -> Response:
    check_id(template_id)
    services = _services(request)
    stored = await blocking(_templates(services).get, template_id)
    shown = values or {
        "name": stored.name,
        "subject": stored.subject,
        "html": stored.html,
        "text": stored.text or "",
    }
    preview = await blocking(_preview, services, shown, None)
    return _editor(
        request, stored, shown, preview, errors=errors, status=status, notice=notice, sent=sent
    )


@router.get("/templates/{template_id:int}")
async def template_edit(request: Request, template_id: int) -> Response:
    notice = "Saved." if request.query_params.get("saved") else None
    return await _edit_page(request, template_id, notice=notice)


@router.post("/templates/{template_id:int}")
async def template_save(request: Request, template_id: int) -> Response:
    require_admin(request)
    check_id(template_id)
    services = _services(request)
    form = await read_form(request)
    try:
        fields = _draft(form)
        await blocking(_templates(services).update, template_id, fields)
    except HookhubError as exc:
        if exc.status >= 500 or exc.status == 404:
            raise
        values = {k: form.get(k, "") for k in FIELDS}
        return await _edit_page(
            request, template_id, values=values, errors={_field(exc): exc.message}, status=422
        )
    return redirect(f"/templates/{template_id}?saved=1")


@router.post("/templates/preview")
async def template_preview(request: Request) -> Response:
    """The live preview (htmx posts the editor's draft here as it is typed). It changes
    nothing, so a viewer may use it too; a draft that fails shows why, in place."""
    form = await read_form(request)
    values = {k: form.get(k, "") for k in FIELDS}
    contact = text(form, "preview_contact")[:320] or None
    source = {
        "subject": text(form, "subject"),
        "html": values["html"] if isinstance(values["html"], str) else "",
        "text": values["text"]
        if isinstance(values["text"], str) and values["text"].strip()
        else None,
    }
    rendered, problem = await blocking(_preview, _services(request), source, contact)
    return render(
        request,
        "_templates_preview.html",
        {"preview": rendered, "preview_error": problem},
    )


@router.post("/templates/{template_id:int}/test")
async def template_test(request: Request, template_id: int) -> Response:
    """Queue the saved template to one address (kind ``test``), as ``POST /emails`` would."""
    require_admin(request)
    check_id(template_id)
    services = _services(request)
    form = await read_form(request)

    def send() -> dict[str, Any]:
        _templates(services).get(template_id)  # 404 for an unknown template
        try:
            address = normalize_email(text(form, "to"))
        except ValidationFailed as exc:
            raise ValidationFailed(exc.message, details={"field": "to"}) from exc
        request_ = SendRequest(to=[(address, None)], template_id=template_id, kind="test")
        sent = EmailService(services.db, services.outbox, services.settings).send(request_)
        return sent.data[0]

    try:
        sent = await blocking(send)
    except HookhubError as exc:
        if exc.status >= 500 or exc.status == 404:
            raise
        return await _edit_page(request, template_id, errors={"to": exc.message}, status=422)
    return await _edit_page(request, template_id, sent=sent)


@router.post("/templates/{template_id:int}/delete")
async def template_delete(request: Request, template_id: int) -> Response:
    require_admin(request)
    check_id(template_id)
    form = await read_form(request)
    if text(form, "confirm") != "yes":
        return await _edit_page(
            request,
            template_id,
            errors={"delete": "Tick the box to confirm: this cannot be undone."},
            status=422,
        )
    await blocking(_templates(_services(request)).delete, template_id)
    return redirect("/templates")
