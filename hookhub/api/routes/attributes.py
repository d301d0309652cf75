"""/api/v1/attributes: declare contact attribute types before their first value arrives."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from hookhub.api.deps import ServicesDep
from hookhub.api.responses import JSON
from hookhub.api.schemas import AttributeCreate, AttributeOut, PageOut
from hookhub.core.contacts import AttributeType
from hookhub.core.jsoncodec import isoformat
from hookhub.errors import Conflict

router = APIRouter(prefix="/attributes", tags=["attributes"])


@router.post(
    "",
    status_code=201,
    response_model=AttributeOut,
    responses={200: {"model": AttributeOut, "description": "Already defined with this type"}},
)
def define_attribute(body: AttributeCreate, services: ServicesDep) -> Response:
    wanted = AttributeType(body.type)
    with services.crm.transaction() as crm:
        existing = crm.attribute_store.all().get(body.name.upper())
        actual = crm.define_attribute(body.name, wanted)
    if actual is not wanted:
        raise Conflict(
            f"Attribute {body.name.upper()} exists with type {actual.value}.",
            details={"attribute": body.name.upper(), "type": actual.value},
        )
    status = 200 if existing is not None else 201
    return JSON(
        {"name": body.name.upper(), "type": actual.value, "created_at": isoformat(crm.now)},
        status_code=status,
    )


@router.get("", response_model=PageOut[AttributeOut])
def list_attributes(services: ServicesDep) -> Response:
    with services.crm.reader() as crm:
        rows = crm.attribute_store.listing()
    return JSON(
        {
            "data": [{**r, "created_at": isoformat(r["created_at"])} for r in rows],
            "next_cursor": None,
        }
    )
