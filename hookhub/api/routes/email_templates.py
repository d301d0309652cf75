"""/api/v1/email-templates: Jinja2 email templates, refused at save unless they compile; preview.

The request and answer shapes live here. A template that does not
compile is a 422 whose details name the field (``subject``, ``html``, ``text``), the line and
Jinja's message; a preview that fails to render is a 422 saying where and why.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field, StringConstraints
from starlette.responses import Response

from hookhub.api.deps import DEFAULT_PAGE, Cursor, Limit, ServicesDep
from hookhub.api.responses import JSON
from hookhub.api.schemas import MAX_ID, Body, Email, Name, PageOut, Text
from hookhub.core.pagination import decode_cursor, encode_cursor
from hookhub.email.template_service import TemplateService
from hookhub.email.templates import MAX_SOURCE_CHARS
from hookhub.services import Services

router = APIRouter(prefix="/email-templates", tags=["email-templates"])
TemplateId = Annotated[int, Path(ge=1, le=MAX_ID)]

Subject = Annotated[Text, Field(min_length=1, max_length=2000)]
Source = Annotated[Text, Field(min_length=1, max_length=MAX_SOURCE_CHARS)]
TextSource = Annotated[Text, Field(max_length=MAX_SOURCE_CHARS)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Tags = Annotated[list[Tag], Field(max_length=20)]
ContactRef = (
    Annotated[int, Field(ge=1, le=MAX_ID)] | Annotated[str, Field(min_length=1, max_length=320)]
)


class SenderIn(Body):
    email: Email
    name: Annotated[Text, Field(max_length=255)] | None = None


class TemplateCreate(Body):
    name: Name
    subject: Subject = Field(description="Jinja2; contact, params and unsubscribe_url in scope.")
    html: Source = Field(description="Jinja2, autoescaped.")
    text: TextSource | None = Field(
        default=None, description="Jinja2, not escaped; made from the HTML when absent."
    )
    sender: SenderIn | None = Field(default=None, description="Default: HOOKHUB_EMAIL_FROM.")
    reply_to: Email | None = None
    tags: Tags | None = None


class TemplatePatch(Body):
    """The fields to change; ``text``, ``sender`` and ``reply_to`` may be set to null."""

    name: Name | None = None
    subject: Subject | None = None
    html: Source | None = None
    text: TextSource | None = None
    sender: SenderIn | None = None
    reply_to: Email | None = None
    tags: Tags | None = None


class SenderOut(BaseModel):
    email: str
    name: str | None


class TemplateOut(BaseModel):
    id: int
    name: str
    subject: str
    html: str
    text: str | None
    sender: SenderOut | None
    reply_to: str | None
    tags: list[str]
    version: int = Field(description="Changes with every edit.")
    created_at: str
    updated_at: str


class PreviewIn(Body):
    contact: ContactRef | None = Field(
        default=None, description="Render with this contact's data (its id or email)."
    )
    params: dict[str, Any] | None = None


class PreviewOut(BaseModel):
    subject: str
    html: str
    text: str


def _service(services: Services) -> TemplateService:
    return TemplateService(services.crm, services.settings.base_url)


@router.post("", status_code=201, response_model=TemplateOut)
def create_template(body: TemplateCreate, services: ServicesDep) -> Response:
    created = _service(services).create(body.model_dump(exclude_none=True))
    return JSON(created.to_api(), status_code=201)


@router.get("", response_model=PageOut[TemplateOut])
def list_templates(
    services: ServicesDep, limit: Limit = DEFAULT_PAGE, cursor: Cursor = None
) -> Response:
    items = _service(services).page(after_id=decode_cursor(cursor), limit=limit)
    next_cursor = encode_cursor(items[-1].id) if len(items) == limit else None
    return JSON({"data": [t.to_api() for t in items], "next_cursor": next_cursor})


@router.get("/{template_id}", response_model=TemplateOut)
def get_template(template_id: TemplateId, services: ServicesDep) -> Response:
    return JSON(_service(services).get(template_id).to_api())


@router.patch("/{template_id}", response_model=TemplateOut)
def update_template(
    template_id: TemplateId, body: TemplatePatch, services: ServicesDep
) -> Response:
    fields = body.model_dump(include=body.model_fields_set)
    return JSON(_service(services).update(template_id, fields).to_api())


@router.delete("/{template_id}", status_code=204)
def delete_template(template_id: TemplateId, services: ServicesDep) -> Response:
    _service(services).delete(template_id)
    return Response(status_code=204)


@router.post("/{template_id}/preview", response_model=PreviewOut)
def preview_template(template_id: TemplateId, body: PreviewIn, services: ServicesDep) -> Response:
    rendered = _service(services).preview(
        template_id, contact=body.contact, params=body.params or {}
    )
    return JSON({"subject": rendered.subject, "html": rendered.html, "text": rendered.text})
