"""An automation's trigger: what starts it, parsed and validated when the automation is saved
(``definition.parse_definition`` calls :func:`parse_trigger`). Pure: no database, no clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo

from hookhub.automation.timing import parse_time_of_day, parse_timezone, path_error
from hookhub.core.contacts import check_event_name, normalize_attribute_name
from hookhub.errors import HookhubError

TRIGGER_TYPES = (
    "contact.created",
    "list.contact_added",
    "list.contact_removed",
    "event.tracked",
    "email.opened",
    "email.clicked",
    "contact.unsubscribed",
    "date",
    "manual",
)


MAX_ID = 2**53 - 1
"""Ids stay within the integers every JSON parser reads exactly (and every database stores)."""


def positive_id(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_ID:
        raise path_error(where, f"must be a positive integer id (at most {MAX_ID})")
    return value


# ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trigger:
    type: str
    list_id: int | None = None
    event_name: str | None = None
    campaign_id: int | None = None
    attribute: str | None = None  # date
    offset_days: int = 0
    at: time = time(9, 0)
    timezone: str = "UTC"
    yearly: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.type in ("list.contact_added", "list.contact_removed") and self.list_id:
            out["list_id"] = self.list_id
        if self.type == "event.tracked":
            out["event_name"] = self.event_name
        if self.type in ("email.opened", "email.clicked") and self.campaign_id:
            out["campaign_id"] = self.campaign_id
        if self.type == "date":
            out.update(
                attribute=self.attribute,
                offset_days=self.offset_days,
                at=self.at.strftime("%H:%M"),
                timezone=self.timezone,
                yearly=self.yearly,
            )
        return out

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


_TRIGGER_KEYS: dict[str, frozenset[str]] = {
    "list.contact_added": frozenset({"type", "list_id"}),
    "list.contact_removed": frozenset({"type", "list_id"}),
    "event.tracked": frozenset({"type", "event_name"}),
    "email.opened": frozenset({"type", "campaign_id"}),
    "email.clicked": frozenset({"type", "campaign_id"}),
    "date": frozenset({"type", "attribute", "offset_days", "at", "timezone", "yearly"}),
}


def parse_trigger(value: Any, where: str = "trigger") -> Trigger:
    if not isinstance(value, Mapping) or not isinstance(value.get("type"), str):
        raise path_error(
            where, f"must be an object with a type (one of {', '.join(TRIGGER_TYPES)})"
        )
    kind = value["type"]
    if kind not in TRIGGER_TYPES:
        raise path_error(f"{where}.type", f"{kind!r} is not one of {', '.join(TRIGGER_TYPES)}")
    extra = set(value) - _TRIGGER_KEYS.get(kind, frozenset({"type"}))
    if extra:
        raise path_error(where, f"unknown keys {sorted(map(str, extra))}")
    if kind in ("list.contact_added", "list.contact_removed"):
        list_id = value.get("list_id")
        return Trigger(
            kind, list_id=None if list_id is None else positive_id(list_id, f"{where}.list_id")
        )
    if kind == "event.tracked":
        try:
            name = check_event_name(value.get("event_name"))
        except HookhubError as exc:
            raise path_error(f"{where}.event_name", exc.message) from exc
        return Trigger(kind, event_name=name)
    if kind in ("email.opened", "email.clicked"):
        campaign = value.get("campaign_id")
        return Trigger(
            kind,
            campaign_id=None if campaign is None else positive_id(campaign, f"{where}.campaign_id"),
        )
    if kind == "date":
        if value.get("attribute") is None:
            raise path_error(f"{where}.attribute", "is required (a date attribute, e.g. BIRTHDAY)")
        try:
            attribute = normalize_attribute_name(value["attribute"])
        except HookhubError as exc:
            raise path_error(f"{where}.attribute", exc.message) from exc
        offset = value.get("offset_days", 0)
        if not isinstance(offset, int) or isinstance(offset, bool) or abs(offset) > 366:
            raise path_error(f"{where}.offset_days", "must be a whole number of days within ±366")
        yearly = value.get("yearly", False)
        if not isinstance(yearly, bool):
            raise path_error(f"{where}.yearly", "must be true or false")
        tz = value.get("timezone", "UTC")
        parse_timezone(tz, f"{where}.timezone")
        return Trigger(
            kind,
            attribute=attribute,
            offset_days=offset,
            at=parse_time_of_day(value.get("at", "09:00"), f"{where}.at"),
            timezone=tz,
            yearly=yearly,
        )
    return Trigger(kind)
