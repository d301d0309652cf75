"""/api/v1/automations: definitions (validated at save), counts, enrollments; and a contact's
journey through them, ``GET /contacts/{ref}/automations``.

The request and answer shapes are ``api/automation_schemas.py``'s; every rule is
:class:`~hookhub.automation.service.AutomationService`'s.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from hookhub.api.automation_schemas import (
    AutomationCreate,
    AutomationOut,
    AutomationPatch,
    EnrollmentAdd,
    EnrollmentOut,
    JourneyOut,
    Status,
)
from hookhub.api.deps import DEFAULT_PAGE, Cursor, Limit, ServicesDep
from hookhub.api.responses import JSON
from hookhub.api.schemas import MAX_ID, PageOut
from hookhub.automation.views import automation_to_api
from hookhub.core.pagination import decode_cursor, encode_cursor

router = APIRouter(tags=["automations"])
AutomationId = Annotated[int, Path(ge=1, le=MAX_ID)]
EnrollmentId = Annotated[int, Path(ge=1, le=MAX_ID)]
Ref = Annotated[str, Path(max_length=320, description="The contact's id or email.")]
ContactFilter = Annotated[
    str | None, Query(min_length=1, max_length=320, description="A contact's id or email.")
]


@router.post("/automations", status_code=201, response_model=AutomationOut)
def create_automation(body: AutomationCreate, services: ServicesDep) -> Response:
    created = services.automations.create(body.model_dump(exclude_unset=True))
    return JSON(created, status_code=201)


@router.get("/automations", response_model=PageOut[AutomationOut])
def list_automations(
    services: ServicesDep, limit: Limit = DEFAULT_PAGE, cursor: Cursor = None
) -> Response:
    items = services.automations.page(after_id=decode_cursor(cursor), limit=limit)
    next_cursor = encode_cursor(items[-1].id) if len(items) == limit else None
    return JSON({"data": [automation_to_api(a) for a in items], "next_cursor": next_cursor})


@router.get("/automations/{automation_id}", response_model=AutomationOut)
def get_automation(automation_id: AutomationId, services: ServicesDep) -> Response:
    return JSON(services.automations.get(automation_id))


@router.patch("/automations/{automation_id}", response_model=AutomationOut)
def patch_automation(
    automation_id: AutomationId, body: AutomationPatch, services: ServicesDep
) -> Response:
    changes = body.model_dump(include=body.model_fields_set)
    return JSON(services.automations.update(automation_id, changes))


@router.delete("/automations/{automation_id}", status_code=204)
def delete_automation(automation_id: AutomationId, services: ServicesDep) -> Response:
    services.automations.delete(automation_id)
    return Response(status_code=204)


@router.get("/automations/{automation_id}/enrollments", response_model=PageOut[EnrollmentOut])
def list_enrollments(
    automation_id: AutomationId,
    services: ServicesDep,
    contact: ContactFilter = None,
    status: Status | None = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response:
    items = services.automations.enrollments(
        automation_id, contact=contact, status=status, after_id=decode_cursor(cursor), limit=limit
    )
    next_cursor = encode_cursor(items[-1]["id"]) if len(items) == limit else None
    return JSON({"data": items, "next_cursor": next_cursor})


@router.post(
    "/automations/{automation_id}/enrollments", status_code=201, response_model=EnrollmentOut
)
def add_enrollment(
    automation_id: AutomationId, body: EnrollmentAdd, services: ServicesDep
) -> Response:
    """Enrol a contact by hand (trigger `manual`). The automation's filter does not apply; its
    reentry does: 409 when it keeps the contact out."""
    return JSON(services.automations.add_contact(automation_id, body.contact), status_code=201)


@router.delete("/automations/{automation_id}/enrollments/{enrollment_id}", status_code=204)
def remove_enrollment(
    automation_id: AutomationId, enrollment_id: EnrollmentId, services: ServicesDep
) -> Response:
    """End an active enrollment (reason `removed`); 409 if it has already ended."""
    services.automations.remove_enrollment(automation_id, enrollment_id)
    return Response(status_code=204)


@router.get("/contacts/{ref}/automations", response_model=PageOut[JourneyOut])
def contact_journey(
    ref: Ref, services: ServicesDep, limit: Limit = DEFAULT_PAGE, cursor: Cursor = None
) -> Response:
    """The contact's enrollments, newest first: where each is, what it did and when, what
    comes next and when."""
    items = services.automations.journey(ref, before_id=decode_cursor(cursor), limit=limit)
    next_cursor = encode_cursor(items[-1]["enrollment_id"]) if len(items) == limit else None
    return JSON({"data": items, "next_cursor": next_cursor})
