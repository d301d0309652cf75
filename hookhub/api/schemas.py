"""Request bodies and response shapes of the REST API (what /openapi.json documents).

Bodies are checked here for shape only; domain rules (email syntax, attribute types, existence
of lists) are checked by the services so that every entry point applies the same rules.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

Id = Annotated[int, Field(ge=1, le=2**63 - 1)]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _utc(value: datetime) -> datetime:
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise ValueError("date is out of range") from None


Text = Annotated[str, AfterValidator(_no_nul)]
Name = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_no_nul)]
UTCDate = Annotated[datetime, AfterValidator(_utc)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContactCreate(Body):
    email: Text = Field(max_length=320)
    ext_id: Text | None = Field(default=None, max_length=255)
    attributes: dict[str, Any] | None = None
    list_ids: list[Id] = Field(default_factory=list, max_length=1000)
    unsubscribed: bool = False


class ContactPatch(Body):
    email: Text | None = Field(default=None, max_length=320)
    ext_id: Text | None = Field(default=None, max_length=255)
    attributes: dict[str, Any] | None = None
    unsubscribed: bool | None = None
    list_ids: list[Id] = Field(
        default_factory=list, max_length=1000, description="Lists to add the contact to."
    )
    unlink_list_ids: list[Id] = Field(
        default_factory=list, max_length=1000, description="Lists to remove the contact from."
    )


class ContactOut(BaseModel):
    id: int
    email: str
    ext_id: str | None
    attributes: dict[str, Any]
    list_ids: list[int]
    unsubscribed: bool
    created_at: str
    updated_at: str


class ListCreate(Body):
    name: Name


class ListOut(BaseModel):
    id: int
    name: str
    contact_count: int
    created_at: str


class ListMembersAdd(Body):
    emails: list[Text] = Field(default_factory=list, max_length=10_000)
    contact_ids: list[Id] = Field(default_factory=list, max_length=10_000)


class ListMembersAdded(BaseModel):
    added: list[int]
    already_members: list[int]


class Identifiers(Body):
    email: Text | None = Field(default=None, max_length=320)
    contact_id: Id | None = None
    ext_id: Text | None = Field(default=None, max_length=255)


class EventCreate(Body):
    event_name: str = Field(max_length=255)
    identifiers: Identifiers
    contact_properties: dict[str, Any] | None = None
    event_properties: dict[str, Any] | None = None
    event_date: UTCDate | None = None


class EventOut(BaseModel):
    id: int
    event_name: str
    contact_id: int
    event_properties: dict[str, Any]
    event_date: str
    created_at: str


class AttributeCreate(Body):
    name: str = Field(max_length=64)
    type: Literal["string", "number", "boolean", "date"]


class AttributeOut(BaseModel):
    name: str
    type: str
    created_at: str


class MessageOut(BaseModel):
    id: str
    type: str
    payload: dict[str, Any] = Field(description="The exact body sent to endpoints.")
    created_at: str


T = TypeVar("T")


class PageOut(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorOut(BaseModel):
    error: ErrorDetail
