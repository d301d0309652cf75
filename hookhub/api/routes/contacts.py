"""/api/v1/contacts: create, upsert, read, patch, delete, erase and list contacts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field
from starlette.responses import Response

from hookhub.api.deps import DEFAULT_PAGE, Cursor, Limit, ServicesDep
from hookhub.api.responses import JSON, StoredJSON
from hookhub.api.schemas import MAX_ID, ContactCreate, ContactOut, ContactPatch, PageOut, Text
from hookhub.core.contacts import normalize_email
from hookhub.core.jsoncodec import isoformat
from hookhub.core.pagination import decode_cursor, encode_cursor
from hookhub.crm.erasure import ContactEraser
from hookhub.crm.operations import UNSET

router = APIRouter(prefix="/contacts", tags=["contacts"])
Ref = Annotated[str, Path(max_length=320, description="The contact's id or email.")]


@router.post(
    "",
    status_code=201,
    response_model=ContactOut,
    responses={200: {"description": "Updated (upsert)", "model": ContactOut}},
)
def create_contact(
    body: ContactCreate,
    services: ServicesDep,
    upsert: Annotated[bool, Query(description="Update the contact if the email exists.")] = False,
) -> Response:
    with services.crm.transaction() as crm:
        contact, created = crm.create_contact(
            body.email,
            ext_id=body.ext_id,
            attributes=body.attributes,
            list_ids=body.list_ids,
            unsubscribed=body.unsubscribed,
            upsert=upsert,
        )
    return JSON(contact.to_api(), status_code=201 if created else 200)


@router.get("", response_model=PageOut[ContactOut])
def list_contacts(
    services: ServicesDep,
    list_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    email: Annotated[
        str | None, Query(max_length=320, json_schema_extra={"format": "email"})
    ] = None,
    ext_id: Annotated[Text | None, Query(max_length=255)] = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response:
    after = decode_cursor(cursor)
    with services.crm.reader() as crm:
        items = crm.contacts.page(
            after_id=after,
            limit=limit,
            list_id=list_id,
            email=normalize_email(email) if email is not None else None,
            ext_id=ext_id,
        )
        if list_id is not None and not items:  # a list with members on the page exists
            crm.require_lists([list_id])
        crm.contacts.attach_list_ids(items)
    next_cursor = encode_cursor(items[-1].id) if len(items) == limit else None
    return StoredJSON({"data": [c.to_api() for c in items], "next_cursor": next_cursor})


@router.get("/{ref}", response_model=ContactOut)
def get_contact(ref: Ref, services: ServicesDep) -> Response:
    with services.crm.reader() as crm:
        contact = crm.find_contact(ref)
        crm.contacts.attach_list_ids([contact])
    return JSON(contact.to_api())


@router.patch("/{ref}", response_model=ContactOut)
def patch_contact(ref: Ref, body: ContactPatch, services: ServicesDep) -> Response:
    given = body.model_fields_set
    with services.crm.transaction() as crm:
        contact = crm.find_contact(ref, lock=True)
        contact = crm.update_contact(
            contact,
            email=body.email if "email" in given and body.email is not None else UNSET,
            ext_id=body.ext_id if "ext_id" in given else UNSET,
            attributes=body.attributes,
            unsubscribed=body.unsubscribed,
            add_list_ids=body.list_ids,
            remove_list_ids=body.unlink_list_ids,
        )
        if "email_blocked" in given:
            block = None
            if body.email_blocked is not None:
                block = contact.email_blocked or {
                    "reason": body.email_blocked.reason,
                    "at": isoformat(crm.now),
                }
            crm.contacts.set_email_blocked(contact.id, block)
            contact.email_blocked = block
    return JSON(contact.to_api())


@router.delete("/{ref}", status_code=204)
def delete_contact(ref: Ref, services: ServicesDep) -> Response:
    with services.crm.transaction() as crm:
        crm.delete_contact(crm.find_contact(ref, lock=True))
    return Response(status_code=204)


class ErasedOut(BaseModel):
    contact_id: int
    messages: int = Field(description="Stored message payloads rewritten to the id only.")
    deliveries_cancelled: int = Field(description="Deliveries of those not sent (cancelled).")
    emails: int = Field(description="Emails to it blanked (rows kept for counts).")
    inbound_requests: int = Field(description="Inbound request bodies that named it, dropped.")
    events: int = Field(description="Custom events deleted.")
    enrollments_ended: int = Field(description="Active automation enrollments ended.")


@router.post("/{ref}/erase", response_model=ErasedOut)
def erase_contact(ref: Ref, services: ServicesDep) -> Response:
    """Delete the contact and its personal data everywhere (``contact.deleted`` carries only
    the id); answers what it removed."""
    return JSON(ContactEraser(services.crm).erase(ref))
