"""A lean asyncio SMTP client: one connection that sends one message after another.

Why our own: a campaign pushes hundreds of thousands of small messages through a handful of
connections, and on one core the client's own CPU per message decides the rate. aiosmtplib
reads every reply line through a ``StreamReader``, wraps each command in timeouts and sends
MAIL, RCPT and DATA one round trip at a time. Here, when the server offers PIPELINING (RFC
2920), MAIL FROM + RCPT TO + DATA go in one write, and a message's dot-stuffed content can
carry the next message's three commands (:meth:`SmtpConnection.transfer` with ``then``): one
write, one read and one wake-up a message. Replies are cut by
:class:`~hookhub.email.smtp_wire.ReplyReader`. ``bench/bench_email_transport.py`` measures it
against aiosmtplib and against the same design on asyncio streams.

A transaction speaks SIZE (declared, and refused here before sending when too big), 8BITMIME
and SMTPUTF8 when the message or an address needs them, RSET after a refused transaction so the
connection is reused, QUIT on close; each wait for replies has its own timeout. Opening the
connection (greeting, EHLO, STARTTLS, AUTH) is :mod:`hookhub.email.smtp_open`.

:class:`SmtpConnection` never raises for the network: it answers an :class:`Attempt`.
:class:`SetupRefused` (raised while opening) never leaves the pool. Nothing here logs.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import NamedTuple

from hookhub.email.smtp_wire import Reply, ReplyReader, to_wire
from hookhub.email.transport import Envelope, Outcome, Phase, classify

__all__ = ["Attempt", "Prepared", "SetupRefused", "SmtpConnection", "because", "reply_text"]

MAX_REPLY_TEXT = 500
"""Characters of a server's reply kept in a result."""
_STEPS: tuple[Phase, Phase, Phase] = ("mail", "rcpt", "data")
_UNSAFE = frozenset(b"\r\n<>\0")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One message's fate on one connection. ``retry_now``: the connection was lost before the
    content was sent, so the server cannot have taken the message and it may be tried again at
    once on another connection (a pooled connection the server had quietly closed)."""

    outcome: Outcome
    code: int | None
    reply: str
    phase: Phase
    retry_now: bool = False


class Prepared(NamedTuple):
    """A message made ready for one server: its MAIL, RCPT and DATA lines and its content."""

    mail: bytes
    rcpt: bytes
    payload: bytes

    @property
    def steps(self) -> tuple[bytes, bytes, bytes]:
        return (self.mail, self.rcpt, b"DATA\r\n")

    @property
    def commands(self) -> bytes:
        """The three commands in one piece, for a pipelining server."""
        return self.mail + self.rcpt + b"DATA\r\n"


class SetupRefused(Exception):
    """Opening a connection failed at ``phase``; ``code`` is the server's, None for a network
    problem or a refusal of ours (no STARTTLS when required, a certificate that does not
    verify). Never carries a secret."""

    def __init__(self, phase: Phase, code: int | None, reply: str) -> None:
        super().__init__(f"{phase}: {code or ''} {reply}".strip())
        self.phase = phase
        self.code = code
        self.reply = reply


def reply_text(reply: Reply) -> str:
    """A reply's text for a result: one line, at most ``MAX_REPLY_TEXT`` characters."""
    return reply[1].decode("utf-8", "replace").replace("\n", " ")[:MAX_REPLY_TEXT]


class SmtpConnection:
    """An open, greeted (and when asked, encrypted and logged-in) SMTP connection."""

    def __init__(self, reader: ReplyReader, timeout: float) -> None:
        self._reader = reader
        self.timeout = timeout
        self.extensions: dict[str, str] = {}
        self.messages = 0
        """Transactions attempted on this connection."""
        self.last_used = reader.loop.time()
        self._pipelining = False
        self._eightbit = False
        self._smtputf8 = False
        self._size_limit = 0

    @property
    def usable(self) -> bool:
        reader = self._reader
        transport = reader.transport
        return not (reader.lost or transport is None or transport.is_closing())

    @property
    def reader(self) -> ReplyReader:
        return self._reader

    def adopt(self, extensions: dict[str, str]) -> None:
        """Take what EHLO announced (PIPELINING, SIZE, 8BITMIME, SMTPUTF8, ...)."""
        self.extensions = extensions
        self._pipelining = "PIPELINING" in extensions
        self._eightbit = "8BITMIME" in extensions
        self._smtputf8 = "SMTPUTF8" in extensions
        size = extensions.get("SIZE", "")
        self._size_limit = int(size) if size.isdigit() else 0

    # -- sending -----------------------------------------------------------------------------

    async def send(self, envelope: Envelope) -> Attempt:
        """Send one message: MAIL, RCPT, DATA and its content; RSET after a refusal."""
        prepared = self.prepare(envelope)
        if isinstance(prepared, Attempt):
            return prepared
        refused = await self.start(prepared)
        if refused is not None:
            return refused
        return await self.transfer(prepared)

    def prepare(self, envelope: Envelope) -> Prepared | Attempt:
        """The commands and content of ``envelope`` for this server, or why it cannot go."""
        prepared = self._commands(envelope)
        if isinstance(prepared, Attempt):
            return prepared
        return Prepared(*prepared)

    async def start(self, prepared: Prepared, *, written: bool = False) -> Attempt | None:
        """MAIL, RCPT and DATA (already ``written`` with the previous content, or now): None
        when the server waits for the content, else the refusal (RSET done)."""
        self.messages += 1
        reader = self._reader
        replies = reader.replies
        transport = reader.transport
        if transport is None or not self.usable:
            return self._lost("mail", before_content=True)
        if self._pipelining:
            if not written:
                transport.write(prepared.commands)
            if not await reader.wait(3, self.timeout):
                for index in range(len(replies)):
                    if replies[index][0] // 100 != 2:  # e.g. a 421 before the server hung up
                        return await self._refused(replies[index], _STEPS[index])
                return self._lost(_STEPS[len(replies)], before_content=True)
            mail_reply = replies.popleft()
            rcpt_reply = replies.popleft()
            data_reply = replies.popleft()
            if mail_reply[0] // 100 != 2 or rcpt_reply[0] // 100 != 2 or data_reply[0] != 354:
                return await self._refused_pipelined(mail_reply, rcpt_reply, data_reply)
            return None
        for step, command in zip(_STEPS, prepared.steps, strict=True):
            transport.write(command)
            if not await reader.wait(1, self.timeout):
                return self._lost(step, before_content=True)
            reply = replies.popleft()
            if reply[0] // 100 != (3 if step == "data" else 2):
                return await self._refused(reply, step)
        return None

    def can_pipeline_next(self) -> bool:
        """Whether :meth:`transfer` may carry the next message's commands (RFC 2920 lets the
        content open a group: the next MAIL, RCPT and DATA ride on the same write)."""
        return self._pipelining

    async def transfer(self, prepared: Prepared, then: Prepared | None = None) -> Attempt:
        """Send the content (and ``then``'s commands, on a pipelining server) and read the
        answer. ``then`` is started later with ``start(then, written=True)``."""
        reader = self._reader
        transport = reader.transport
        if transport is None or transport.is_closing():
            return self._lost("data", before_content=True)
        if then is not None and self._pipelining:
            transport.write(prepared.payload + then.commands)
        else:
            transport.write(prepared.payload)
        if not await reader.wait(1, self.timeout):
            return self._lost("data", before_content=False)
        reply = reader.replies.popleft()
        self.last_used = reader.loop.time()
        if reply[0] // 100 == 2:
            return Attempt("sent", reply[0], reply_text(reply), "data")
        return await self._refused(reply, "data", in_transaction=False)

    def _commands(self, envelope: Envelope) -> tuple[bytes, bytes, bytes] | Attempt:
        """MAIL, RCPT and DATA for ``envelope`` and its content, or why it cannot be sent."""
        try:
            sender = envelope.sender.encode("ascii")
            recipient = envelope.recipient.encode("ascii")
            params = b""
        except UnicodeEncodeError:
            if not self._smtputf8:
                return Attempt(
                    "deferred",
                    None,
                    "an address is not ASCII and the server does not offer SMTPUTF8",
                    "mail",
                )
            sender = envelope.sender.encode()
            recipient = envelope.recipient.encode()
            params = b" SMTPUTF8"
        if _UNSAFE.intersection(sender):
            return Attempt("bounced", None, "the sender is not a valid address", "mail")
        if _UNSAFE.intersection(recipient):
            return Attempt("bounced", None, "the recipient is not a valid address", "rcpt")
        data = envelope.data
        if self._size_limit:
            if len(data) > self._size_limit:
                return Attempt(
                    "bounced",
                    552,
                    f"the message ({len(data)} bytes) is larger than the server's limit of"
                    f" {self._size_limit} bytes (SIZE)",
                    "mail",
                )
            params += b" SIZE=%d" % len(data)
        if self._eightbit and not data.isascii():
            params += b" BODY=8BITMIME"
        mail = b"MAIL FROM:<" + sender + b">" + params + b"\r\n"
        return mail, b"RCPT TO:<" + recipient + b">\r\n", to_wire(data)

    def _lost(self, phase: Phase, *, before_content: bool) -> Attempt:
        reader = self._reader
        if reader.timed_out:
            reason = f"timed out after {self.timeout:g} s waiting for the server"
        else:
            reason = "connection lost" + because(reader)
        retry_now = before_content and not reader.timed_out
        self.abort()
        return Attempt("deferred", None, reason, phase, retry_now=retry_now)

    async def _refused_pipelined(self, mail: Reply, rcpt: Reply, data: Reply) -> Attempt:
        if data[0] == 354:
            # The server took DATA although MAIL or RCPT was refused: an empty content ends it
            # (RFC 2920 3.1) and the server drops the transaction for want of a recipient.
            self._reader.transport.write(b".\r\n")  # type: ignore[union-attr]
            if not await self._reader.wait(1, self.timeout):
                self.abort()
            else:
                self._reader.replies.popleft()
        if mail[0] // 100 != 2:
            return await self._refused(mail, "mail")
        if rcpt[0] // 100 != 2:
            return await self._refused(rcpt, "rcpt")
        return await self._refused(data, "data")

    async def _refused(self, reply: Reply, phase: Phase, *, in_transaction: bool = True) -> Attempt:
        code = reply[0]
        attempt = Attempt(classify(code, phase), code, reply_text(reply), phase)
        if code == 421:
            self.abort()  # the server is closing this connection
        elif self.usable and in_transaction:
            await self._reset()
        self.last_used = self._reader.loop.time()
        return attempt

    async def _reset(self) -> None:
        """RSET, so the next message starts a clean transaction; close if that fails."""
        reader = self._reader
        reader.transport.write(b"RSET\r\n")  # type: ignore[union-attr]
        if not await reader.wait(1, self.timeout) or reader.replies.popleft()[0] != 250:
            self.abort()

    # -- closing -----------------------------------------------------------------------------

    async def quit(self, timeout: float = 5.0) -> None:
        """QUIT and close; waits ``timeout`` at most for the server's goodbye, and as long
        again for the connection to be closed (a TLS close is a conversation too)."""
        reader = self._reader
        if self.usable:
            reader.replies.clear()
            reader.transport.write(b"QUIT\r\n")  # type: ignore[union-attr]
            await reader.wait(1, min(timeout, self.timeout))
        if reader.transport is not None:
            reader.transport.close()
        await self.closed(timeout)

    async def closed(self, timeout: float = 5.0) -> None:
        """Wait (``timeout`` at most) until the transport has let go of the socket."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reader.closed), timeout)

    def abort(self) -> None:
        if self._reader.transport is not None:
            self._reader.transport.abort()
        self._reader.lost = True


def because(reader: ReplyReader) -> str:
    """`` (why)`` when the reader knows why its connection was lost."""
    return f" ({reader.error})" if reader.error else ""
