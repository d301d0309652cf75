"""Rules for contact data: email normalisation, attribute names and typed attribute values.

Attributes are typed (``string``, ``number``, ``boolean``, ``date``). Values written through the
API must already have the attribute's type (:func:`check_value`); values mapped from inbound
payloads or CSV files are converted where the conversion is unambiguous (:func:`coerce_value`).
An attribute without a declaration gets its type from its first value written through the API
(:func:`infer_type`); from a payload, it is text (see ``CrmTx.prepare_attributes``).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from email_validator import EmailNotValidError, validate_email

from hookhub.errors import NotFound, ValidationFailed

ATTRIBUTE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}\Z")
EVENT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}\Z")
MAX_STRING_LENGTH = 10_000
MAX_EXT_ID_LENGTH = 255
_TRUE = {"true", "yes", "y", "1", "on"}
_FALSE = {"false", "no", "n", "0", "off"}


class AttributeType(StrEnum):
    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"


def normalize_email(raw: object) -> str:
    """Trimmed, lower-cased and syntactically valid, or ValidationFailed saying why."""
    if not isinstance(raw, str):
        raise ValidationFailed("email must be a string.", details={"field": "email"})
    email = raw.strip().lower()
    if not email:
        raise ValidationFailed("email is required.", details={"field": "email"})
    fast = _plain_address(email)
    if fast is not None:
        return fast
    try:
        result = validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationFailed(
            f"{email!r} is not a valid email address: {exc}", details={"field": "email"}
        ) from exc
    return result.normalized.lower()


# An ASCII dot-atom local part (RFC 5322 atext), which email_validator accepts as it is.
_PLAIN_LOCAL = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
_LOCAL_MAX, _ADDRESS_MAX = 64, 254
_domains: dict[str, str | None] = {}


def _plain_address(email: str) -> str | None:
    """``email`` normalized as email_validator would, when that is sure without it; else None.

    Validating an address cost ~150 us, mostly its domain (IDNA and special-use checks), and
    the addresses a system sees share a few domains: a plain ASCII local part is checked here,
    the domain once per process through email_validator itself (its verdict kept), and the
    lengths as it checks them. Anything else (quoted or non-ASCII local parts, a refused
    domain) goes to email_validator, which explains the refusal.
    """
    local, at, domain = email.rpartition("@")
    if not at or len(local) > _LOCAL_MAX or not _PLAIN_LOCAL.match(local):
        return None
    normal = _domains.get(domain, "")
    if normal == "":
        try:
            normal = validate_email("a@" + domain, check_deliverability=False).domain.lower()
        except EmailNotValidError:
            normal = None
        if len(_domains) >= 10_000:
            _domains.clear()
        _domains[domain] = normal
    if normal is None or len(local) + 1 + len(normal) > _ADDRESS_MAX:
        return None
    return f"{local}@{normal}"


def normalize_ext_id(raw: object) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        raise ValidationFailed("ext_id must be a string.", details={"field": "ext_id"})
    value = str(raw).strip()
    if not value or len(value) > MAX_EXT_ID_LENGTH:
        raise ValidationFailed(
            f"ext_id must be 1 to {MAX_EXT_ID_LENGTH} characters.", details={"field": "ext_id"}
        )
    return value


def normalize_attribute_name(raw: str) -> str:
    """Attribute names are case-insensitive and kept upper-case (FIRSTNAME, PLAN, ...)."""
    if not isinstance(raw, str) or not ATTRIBUTE_NAME.match(raw):
        raise ValidationFailed(
            f"Attribute name {raw!r} must start with a letter and contain only letters, digits "
            "and underscores (at most 64).",
            details={"attribute": raw},
        )
    return raw.upper()


def check_event_name(raw: object) -> str:
    if not isinstance(raw, str) or not EVENT_NAME.match(raw):
        raise ValidationFailed(
            "event_name must be 1 to 255 characters of letters, digits, '_' and '-'.",
            details={"field": "event_name"},
        )
    return raw


def infer_type(name: str, value: Any) -> AttributeType:
    """The type attribute ``name`` gets when its first value arrives without a declaration.

    ``name`` is only used to say which attribute is wrong when ``value`` fits no type.
    """
    if isinstance(value, bool):
        return AttributeType.BOOLEAN
    if isinstance(value, int | float):
        return AttributeType.NUMBER
    if isinstance(value, str):
        return AttributeType.STRING
    raise _mismatch(name, "a string, number or boolean", value)


def check_value(name: str, kind: AttributeType, value: Any) -> Any:
    """The stored form of ``value`` if it has type ``kind``; None means 'remove'."""
    if value is None:
        return None
    if kind is AttributeType.STRING:
        if isinstance(value, str):
            if len(value) > MAX_STRING_LENGTH:
                raise ValidationFailed(
                    f"Attribute {name} is longer than {MAX_STRING_LENGTH} characters.",
                    details={"attribute": name},
                )
            return value
        raise _mismatch(name, "a string", value)
    if kind is AttributeType.NUMBER:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                raise _mismatch(name, "a finite number", value)
            if isinstance(value, int) and abs(value) >= 2**63:
                raise _mismatch(name, "a number within 64 bits", value)
            return value
        raise _mismatch(name, "a number", value)
    if kind is AttributeType.BOOLEAN:
        if isinstance(value, bool):
            return value
        raise _mismatch(name, "a boolean", value)
    if isinstance(value, str):
        parsed = _parse_date(value)
        if parsed is not None:
            return parsed
    raise _mismatch(name, "a date (YYYY-MM-DD)", value)


def coerce_value(name: str, kind: AttributeType, value: Any) -> Any:
    """Like :func:`check_value`, converting unambiguous strings and numbers first."""
    if isinstance(value, str):
        text = value.strip()
        if kind is AttributeType.NUMBER and text:
            try:
                number = float(text)
            except ValueError:
                raise _mismatch(name, "a number", value) from None
            value = int(number) if number.is_integer() and "." not in text else number
        elif kind is AttributeType.BOOLEAN:
            if text.lower() in _TRUE:
                value = True
            elif text.lower() in _FALSE:
                value = False
        elif kind is AttributeType.STRING:
            value = text
    elif kind is AttributeType.STRING and isinstance(value, bool):
        value = "true" if value else "false"  # JSON's spelling, not Python's
    elif kind is AttributeType.STRING and isinstance(value, int | float):
        value = str(value)
    elif (
        kind is AttributeType.DATE
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    ):
        # Unix timestamps (Stripe's `created`, Calendly's epochs) become dates, in UTC: the
        # server's own time zone must not move a moment near midnight to another day.
        try:
            value = datetime.fromtimestamp(value, UTC).date().isoformat()
        except (OverflowError, OSError, ValueError):
            raise _mismatch(name, "a date", value) from None
    return check_value(name, kind, value)


def _parse_date(text: str) -> str | None:
    text = text.strip()
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        return None


def _mismatch(name: str, expected: str, value: Any) -> ValidationFailed:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return ValidationFailed(
        f"Attribute {name} must be {expected}, got {shown}.",
        details={"attribute": name, "expected": expected},
    )


def parse_ref(ref: str | int) -> tuple[str, str | int]:
    """A contact reference is its numeric id or its email address."""
    if isinstance(ref, int):
        return "id", ref
    text = ref.strip()
    # isdigit() alone also accepts digits int() refuses (superscripts such as "²").
    if text.isascii() and text.isdigit() and len(text) < 19:
        return "id", int(text)
    if "@" in text and "\x00" not in text:  # PostgreSQL cannot even compare text with NUL
        return "email", text.lower()
    raise NotFound(f"No contact {ref!r}: use the contact's id or email.", details={"ref": ref})
