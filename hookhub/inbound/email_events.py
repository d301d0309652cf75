"""The ``email_event`` rule action: a provider's report about an email, applied to that email.

A rule (DESIGN.md, "Email provider events") maps a provider's payload to one report of the
ledger (``delivered``, ``bounced``, ``complained``, ``opened``, ``clicked``, ``unsubscribed``)::

    "email_event": {"type": "'bounced'", "message_id": "\\"smtp-id\\"", "email": "email",
                    "bounce_type": "'hard'", "reason": "reason", "url": "url",
                    "proxy": "sg_machine_open"}

Every value is a JMESPath expression, like all of a rule's values. The email is the one with
that Message-ID, else the newest one sent to that address; when there is none, the request is
still processed and its log says so. A ``type`` that resolves to null records nothing (a
provider event Hookhub has no use for, named in the log). The report goes through
:class:`~hookhub.email.ledger.EmailLedger` in the rule's transaction; this module must never
write to the email tables itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hookhub.crm.operations import CrmTx
from hookhub.email.ledger import REPORTS, EmailLedger, crm_unsubscriber
from hookhub.errors import ValidationFailed
from hookhub.inbound.rule_expressions import Expression, compile_expression
from hookhub.records.email import Email
from hookhub.store.email_reads import EmailReads

FIELDS = ("type", "message_id", "email", "bounce_type", "reason", "url", "proxy")
MAX_TEXT = 1000  # a reason or URL longer than this is cut (it is kept on the timeline)


@dataclass(frozen=True, slots=True)
class EmailEventSpec:
    """The compiled action: each field's expression."""

    expressions: dict[str, Expression]


def compile_spec(value: Any, where: str) -> EmailEventSpec:
    """The action checked and compiled; ValidationFailed points at what is wrong."""
    if not isinstance(value, Mapping):
        raise _fail(where, "must be an object")
    extra = set(value) - set(FIELDS)
    if extra:
        raise _fail(where, f"unknown keys {sorted(map(str, extra))}; expected {', '.join(FIELDS)}")
    if "type" not in value:
        raise _fail(where, f"needs a type expression (one of {', '.join(REPORTS)}, or null)")
    if "message_id" not in value and "email" not in value:
        raise _fail(where, "needs a message_id or an email expression to find the email by")
    return EmailEventSpec({key: compile_expression(value[key], f"{where}.{key}") for key in value})


def _fail(where: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{where}: {message}", details={"path": where})


def apply(
    crm: CrmTx, values: dict[str, Any], blame: Callable[[str, str], Exception]
) -> dict[str, Any]:
    """Record one resolved action; what was done, for the request log.

    ``values`` are the action's fields as resolved on the payload; ``blame(field, message)``
    makes the error that points at the field's expression.
    """
    kind = values.get("type")
    if kind is None:
        return {"email_event": None, "note": "type resolved to null: nothing to record"}
    if kind not in REPORTS:
        raise blame(
            "type",
            f"email_event.type resolved to {str(kind)[:60]!r}; expected one of "
            f"{', '.join(REPORTS)} (or null to record nothing)",
        )
    message_id = _text(values, "message_id", blame)
    address = _text(values, "email", blame)
    email, found_by = find_email(EmailReads(crm.conn), message_id, address)
    action: dict[str, Any] = {"email_event": kind}
    if email is None:
        wanted = " or ".join(
            f"{what} {value!r}"
            for what, value in (("Message-ID", message_id), ("recipient", address))
            if value
        )
        action["note"] = (
            f"no email found by {wanted or 'nothing (both resolved to null)'}: nothing recorded"
        )
        return action
    ledger = EmailLedger(crm.conn, crm.outbox, crm.now, unsubscribe=crm_unsubscriber(crm))
    action.update(ledger.report(email, kind, _detail(kind, values, blame)))
    action["found_by"] = found_by
    return action


def find_email(
    store: EmailReads, message_id: str | None, address: str | None
) -> tuple[Email | None, str | None]:
    """The email a provider's event is about, and how it was found (``message_id`` or
    ``recipient``): by Message-ID, else the newest email to the address."""
    if message_id:
        email = store.by_message_id(message_id)
        if email is not None:
            return email, "message_id"
    if address:
        email = store.latest_to(address.strip()) or store.latest_to(address.strip().lower())
        if email is not None:
            return email, "recipient"
    return None, None


def _text(values: dict[str, Any], field: str, blame: Callable[[str, str], Exception]) -> str | None:
    value = values.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise blame(field, f"email_event.{field} resolved to {type(value).__name__}, not text")
    text = str(value)
    if "\x00" in text:
        raise blame(field, f"email_event.{field} contains a NUL character")
    return text[:MAX_TEXT]


def _detail(
    kind: str, values: dict[str, Any], blame: Callable[[str, str], Exception]
) -> dict[str, Any]:
    detail: dict[str, Any] = {"source": "provider"}
    if kind == "bounced":
        bounce_type = values.get("bounce_type")
        if bounce_type is not None and bounce_type not in ("hard", "soft"):
            raise blame(
                "bounce_type",
                f"email_event.bounce_type resolved to "
                f"{str(bounce_type)[:60]!r}; expected hard or soft",
            )
        detail["bounce_type"] = bounce_type or "hard"
    for field in ("reason", "url"):
        text = _text(values, field, blame)
        if text is not None:
            detail[field] = text
    if kind in ("opened", "clicked"):
        detail["proxy"] = values.get("proxy") is True
    return detail
