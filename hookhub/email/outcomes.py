"""What one attempt means for its email: the status, the next attempt, what is stored.

Plain functions over the worker's values (no I/O, no clock: ``now`` is handed in). 250 is
``sent``; a 4xx, a timeout or a lost connection is ``deferred`` and tried again after the
email retry schedule's next delay, then ``failed`` (a soft bounce) once the schedule is used
up; a 5xx on MAIL, RCPT or DATA is ``bounced`` (hard: the ledger blocks the contact). An email
that could not be rendered has ``failed`` without an attempt; one whose contact is blocked or
unsubscribed is ``skipped``.
"""

from __future__ import annotations

from collections.abc import Sequence

from hookhub.email.compose import Prepared
from hookhub.email.ledger import Attempt
from hookhub.email.transport import SendResult
from hookhub.store.emails import EmailUpdate

_REASON_CHARS = 500


def reply_text(result: SendResult) -> str:
    code = f"{result.code} " if result.code is not None else ""
    return f"{code}{result.reply}".strip()[:_REASON_CHARS]


def not_sent(prepared: Prepared) -> Attempt:
    """The outcome of an email that will not be sent this time (skipped, or not renderable)."""
    email = prepared.email
    if prepared.skip is not None:
        update = EmailUpdate(email.id, "skipped", prepared.skip, email.attempt_count, None)
    else:
        reason = (prepared.failure or "could not be rendered")[:_REASON_CHARS]
        update = EmailUpdate(email.id, "failed", reason, email.attempt_count, None)
    return Attempt(email, update)


def attempted(
    prepared: Prepared, result: SendResult, schedule: Sequence[float], now: float
) -> Attempt:
    """The outcome of sending ``prepared`` as the transport answered ``result``."""
    email = prepared.email
    attempts = email.attempt_count + 1
    reply = reply_text(result)
    raw = prepared.data if prepared.rendered else None
    links = prepared.links if prepared.rendered else None
    status, reason, next_at = "sent", None, None
    if result.outcome == "bounced":
        status, reason = "bounced", reply
    elif result.outcome == "deferred":
        if attempts <= len(schedule):
            status, reason, next_at = "deferred", reply, now + schedule[attempts - 1]
        else:
            status, reason = "failed", f"soft bounce, retries used up: {reply}"[:_REASON_CHARS]
    update = EmailUpdate(
        email.id,
        status,
        reason,
        attempts,
        next_at,
        subject=prepared.subject,
        raw=raw,
        links=links,
        sent=status == "sent",
    )
    return Attempt(email, update, code=result.code, reply=result.reply[:_REASON_CHARS])
