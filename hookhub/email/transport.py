"""The mail transport seam: what the email worker hands a message to, and what it gets back.

The worker builds an :class:`Envelope` (sender, one recipient, the exact message bytes) and
asks a :class:`MailTransport` to send it; the answer is a :class:`SendResult` that says what the
worker should record: ``sent`` (a 2xx at the end of DATA), ``deferred`` (try again later: any
4xx, a timeout, a lost connection, or a server that refuses our configuration) or ``bounced``
(a 5xx on MAIL, RCPT or DATA: the recipient will never get it this way). :func:`classify` is
that rule, in one place.

Two transports implement the seam: :class:`CaptureTransport` (no SMTP URL configured: the
email stays in the database and goes nowhere) and ``hookhub.email.pool.SmtpTransport``. A
transport never raises for anything the network or the server does, and nothing it returns,
logs or describes ever contains the SMTP password.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "CONFIG_PHASES",
    "CaptureTransport",
    "Envelope",
    "MailTransport",
    "Outcome",
    "Phase",
    "SendResult",
    "classify",
]

Outcome = Literal["sent", "deferred", "bounced"]
Phase = Literal["connect", "greeting", "ehlo", "starttls", "auth", "mail", "rcpt", "data"]

CONFIG_PHASES: frozenset[Phase] = frozenset({"connect", "greeting", "ehlo", "starttls", "auth"})
"""Phases before any message is named: a refusal there is about us, never the recipient."""

_AUTH_CODES = frozenset({530, 534, 535, 538})
"""RFC 4954's authentication refusals; a 530 on MAIL means we should have logged in first."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message to one recipient: ``data`` is the complete RFC 5322 message, sent as is.

    ``ref`` is the caller's own reference (an email id): transports never look at it, it
    only lets a caller match results to its records.
    """

    sender: str
    recipient: str
    data: bytes
    ref: int = 0


@dataclass(frozen=True, slots=True)
class SendResult:
    """What happened to one envelope.

    ``code`` is the SMTP reply code that decided it (None for a timeout, a lost connection or
    a local refusal), ``reply`` the server's text (or our reason), ``phase`` the step it was
    decided at and ``duration`` the seconds this message took, waiting for a connection
    included.
    """

    outcome: Outcome
    code: int | None
    reply: str
    phase: Phase
    duration: float


def classify(code: int, phase: Phase) -> Outcome:
    """The outcome of a final reply ``code`` received at ``phase``.

    2xx (and 3xx, the go-ahead for DATA's content or AUTH's next step) is ``sent`` as far as
    this step goes; 4xx is ``deferred``; 5xx on MAIL, RCPT or DATA is ``bounced``; 5xx before
    a transaction starts (greeting, EHLO, STARTTLS, AUTH), or an authentication refusal on
    MAIL, is a configuration problem and ``deferred``: it must never block a contact.
    """
    if code < 400:
        return "sent"
    if code < 500 or phase in CONFIG_PHASES or code in _AUTH_CODES:
        return "deferred"
    return "bounced"


@runtime_checkable
class MailTransport(Protocol):
    """Sends envelopes. Never raises for a network or server problem: it answers a result."""

    async def send(self, envelope: Envelope) -> SendResult:
        """Send one envelope."""
        ...

    async def send_many(self, envelopes: Sequence[Envelope]) -> list[SendResult]:
        """Send a batch (spread over the transport's connections); results in the same order."""
        ...

    async def aclose(self) -> None:
        """Close every connection (politely: QUIT). The transport can be used again after."""
        ...

    def describe(self) -> str:
        """One line for logs and the start banner: where mail goes, never a password."""
        ...


class CaptureTransport:
    """Email is kept in the database only: every envelope is "sent" nowhere, at once."""

    CAPTURED = SendResult("sent", 250, "captured", "data", 0.0)

    async def send(self, envelope: Envelope) -> SendResult:
        return self.CAPTURED

    async def send_many(self, envelopes: Sequence[Envelope]) -> list[SendResult]:
        return [self.CAPTURED] * len(envelopes)

    async def aclose(self) -> None:
        return None

    def describe(self) -> str:
        return "capture (HOOKHUB_SMTP_URL is not set: email is stored and sent nowhere)"
