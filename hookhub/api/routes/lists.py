"""/api/v1/lists: lists of contacts and their membership."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.responses import Response

from hookhub.api.deps import DEFAULT_PAGE, Cursor, Limit, ServicesDep
from hookhub.api.responses import JSON
from hookhub.api.schemas import (
    MAX_ID,
    ListCreate,
    ListMembersAdd,
    ListMembersAdded,
    ListOut,
    PageOut,
)
from hookhub.core.pagination import decode_cursor, encode_cursor
from hookhub.crm.operations import CrmTx
from hookhub.errors import NotFound
from hookhub.records.contacts import ContactList

router = APIRouter(prefix="/lists", tags=["lists"])
ListId = Annotated[int, Path(ge=1, le=MAX_ID)]


def _require(crm: CrmTx, list_id: int) -> ContactList:
    found = crm.lists.get(list_id)
    if found is None:
        raise NotFound(f"No list {list_id}.", details={"list_id": list_id})
    return found


@router.post("", status_code=201, response_model=ListOut)
def create_list(body: ListCreate, services: ServicesDep) -> Response:
    with services.crm.transaction() as crm:
        created = crm.lists.create(body.name, crm.now)
    return JSON(created.to_api(), status_code=201)


@router.get("", response_model=PageOut[ListOut])
def list_lists(
    services: ServicesDep, limit: Limit = DEFAULT_PAGE, cursor: Cursor = None
) -> Response:
    with services.crm.reader() as crm:
        items = crm.lists.page(after_id=decode_cursor(cursor), limit=limit)
    next_cursor = encode_cursor(items[-1].id) if len(items) == limit else None
    return JSON({"data": [i.to_api() for i in items], "next_cursor": next_cursor})


@router.get("/{list_id}", response_model=ListOut)
def get_list(list_id: ListId, services: ServicesDep) -> Response:
    with services.crm.reader() as crm:
        return JSON(_require(crm, list_id).to_api())


@router.patch("/{list_id}", response_model=ListOut)
def rename_list(list_id: ListId, body: ListCreate, services: ServicesDep) -> Response:
    with services.crm.transaction() as crm:
        _require(crm, list_id)
        crm.lists.rename(list_id, body.name)
        return JSON(_require(crm, list_id).to_api())


@router.delete("/{list_id}", status_code=204)
def delete_list(list_id: ListId, services: ServicesDep) -> Response:
    with services.crm.transaction() as crm:
        crm.delete_list(list_id)
    return Response(status_code=204)


@router.post("/{list_id}/contacts", status_code=201, response_model=ListMembersAdded)
def add_contacts(list_id: ListId, body: ListMembersAdd, services: ServicesDep) -> Response:
    with services.crm.transaction() as crm:
        result = crm.add_contacts_to_list(list_id, emails=body.emails, contact_ids=body.contact_ids)
    return JSON(result, status_code=201)


@router.delete("/{list_id}/contacts/{ref}", status_code=204)
def remove_contact(
    list_id: ListId,
    ref: Annotated[str, Path(max_length=320)],
    services: ServicesDep,
) -> Response:
    with services.crm.transaction() as crm:
        crm.remove_from_list(list_id, crm.find_contact(ref))
    return Response(status_code=204)
