"""Request bodies and response shapes of /api/v1/inbound-webhooks (what /openapi.json documents).

Shapes only: whether a source's secret, rules and options make sense is checked by the inbound
service, as for every entry point. This module must never hold domain rules or import anything
below the API layer.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from hookhub.api.schemas import Body, Text


class InboundCreate(Body):
    name: Text = Field(default="", max_length=255)
    source: Literal[
        "stripe",
        "shopify",
        "calendly",
        "typeform",
        "github",
        "standard",
        "generic",
        "mailgun",
        "postmark",
        "sendgrid",
    ]
    secret: Text | None = Field(default=None, min_length=1, max_length=1024)
    rules: list[dict[str, Any]] | None = Field(
        default=None, description="Default: the source's presets."
    )
    options: dict[str, Any] | None = None
    rate_limit: float | None = Field(default=None, ge=0.001, le=1_000_000)
    enabled: bool = True


class InboundPatch(Body):
    name: Text | None = Field(default=None, min_length=1, max_length=255)
    secret: Text | None = Field(default=None, min_length=1, max_length=1024)
    rules: list[dict[str, Any]] | None = None
    options: dict[str, Any] | None = None
    rate_limit: float | None = Field(default=None, ge=0.001, le=1_000_000)
    enabled: bool | None = None


class InboundOut(BaseModel):
    id: int
    name: str
    source: str
    url: str
    rules: list[Any]
    created_at: str
    secret: str | None = Field(default=None, description="Only in the answer to create.")
    unlogged_24h: dict[str, int] | None = Field(
        default=None,
        description="Requests answered in the last 24 hours but not kept in the request log,"
        " by reason: `rate_limited` (429) and `refused` (refusals past the number logged a"
        " minute); only in the answer to GET of one webhook.",
    )


def _raw_body(value: Any) -> Any:
    """A string body is sent as its UTF-8 bytes, which a lone surrogate does not have."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


class InboundPreview(Body):
    body: Annotated[Any, AfterValidator(_raw_body)] = Field(
        description="The payload: a JSON value, or a string sent as-is."
    )
    headers: dict[str, str] | None = None


class InboundRequestSummaryOut(BaseModel):
    """A logged request as the list shows it: its body's size, not the body."""

    id: int
    received_at: str
    status: Literal["received", "processed", "failed", "rejected", "duplicate"]
    headers: dict[str, str]
    body_size: int | None = Field(description="Bytes of the body kept in the log.")
    error: str | None
    actions: list[Any] | None


class InboundRequestOut(InboundRequestSummaryOut):
    body: str | None
