"""One ``POST /in/{token}`` taken by Hookhub's HTTP protocol (``hookhub.api.http``), without ASGI.

:class:`InboundExchange` is what the protocol keeps for such a request instead of uvicorn's
request cycle: its webhook (looked up as soon as the headers are in), its body (up to the
receiver's limit, within its ``body_timeout``), then its one response, written in one piece.
It must never read a body it will not use, nor answer twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from hookhub.inbound.receiver import (
    InboundReceiver,
    declared_length,
    failure_answer,
    timeout_answer,
)
from hookhub.inbound.service import InboundWebhook

if TYPE_CHECKING:
    from hookhub.api.http import HookhubHttpProtocol

__all__ = ["InboundExchange"]

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _NoEvent:
    """Stands for a cycle's ``message_event``, which uvicorn sets when the connection is lost."""

    __slots__ = ()

    def set(self) -> None:
        pass


class InboundExchange:
    """One ``POST /in/{token}`` on a connection: its webhook, its body, then its one response.

    The webhook is looked up as soon as the headers are in; an unknown one is answered 404
    without reading the body, and a body that does not arrive within the receiver's
    ``body_timeout`` of its turn is answered 408. Either ends the connection. Quacks like
    uvicorn's ``RequestResponseCycle`` where the base protocol touches it (``response_complete``,
    ``keep_alive``, ``disconnected``, ``message_event``).
    """

    __slots__ = (
        "_abandoned",
        "_chunks",
        "_complete",
        "_continue_sent",
        "_expect_continue",
        "_looked_up",
        "_lookup_error",
        "_ran",
        "_size",
        "_started",
        "_timed_out",
        "_timer",
        "_too_large",
        "disconnected",
        "headers",
        "keep_alive",
        "protocol",
        "receiver",
        "response_complete",
        "webhook",
    )
    message_event = _NoEvent()

    def __init__(
        self,
        protocol: HookhubHttpProtocol,
        receiver: InboundReceiver,
        token: str,
        headers: list[tuple[bytes, bytes]],
        *,
        keep_alive: bool,
        expect_continue: bool,
    ) -> None:
        self.protocol = protocol
        self.receiver = receiver
        self.headers = headers
        self.keep_alive = keep_alive
        self.disconnected = False
        self.response_complete = False
        self.webhook: InboundWebhook | None = None
        self._expect_continue = expect_continue
        self._continue_sent = False
        self._chunks: list[bytes] = []
        self._size = 0
        self._complete = False
        self._started = False
        self._ran = False
        self._looked_up = False
        self._lookup_error: BaseException | None = None
        self._timed_out = False
        self._abandoned = False
        self._timer: asyncio.TimerHandle | None = None
        self._too_large = declared_length(headers) > receiver.max_body
        receiver.find(token, self._found)

    def _found(self, webhook: InboundWebhook | None, error: BaseException | None) -> None:
        self._looked_up = True
        self.webhook = webhook
        self._lookup_error = error
        if self._refused() and not self._complete:
            # Whatever of the body came with the headers is read first (a small one then
            # keeps the connection); the rest is never read.
            self.protocol.loop.call_soon(self._abandon_body)
            return
        self._proceed()

    def _abandon_body(self) -> None:
        if not self._complete:
            self._abandoned = True
            self._chunks = []
            self._stop_reading()
        self._proceed()

    def _refused(self) -> bool:
        """Answered without its body: no such webhook, or it could not be looked up."""
        return self._lookup_error is not None or self.webhook is None or not self.webhook.enabled

    def start(self) -> None:
        """Its turn on the connection has come (at once, or after a pipelined request)."""
        self._started = True
        if not self.protocol.feeding:  # else armed after the read, if the body is not all in it
            self.arm_deadline()
        self._proceed()

    def arm_deadline(self) -> None:
        """Start the body's deadline, unless the body is all in or no longer wanted."""
        if self._timer is not None or not self._started or self._ran or self._complete:
            return
        if not (self._too_large or self._timed_out or self._abandoned):
            loop = self.protocol.loop
            self._timer = loop.call_later(self.receiver.body_timeout, self._time_out)

    def _proceed(self) -> None:
        """Answer if everything needed is known; else ask for the body if the sender waits."""
        if self._ran or not (self._started and self._looked_up):
            return
        if self._complete or self._too_large or self._timed_out or self._abandoned:
            self._run()
        elif self._expect_continue and not self._continue_sent:
            self._continue_sent = True
            self.protocol.gathering.write_now(_CONTINUE)

    def feed(self, chunk: bytes) -> None:
        if self._too_large or self._ran or self._timed_out or self._abandoned:
            return
        self._size += len(chunk)
        if self._size > self.receiver.max_body:
            self._too_large = True
            self._chunks = []
            self._stop_reading()  # nothing past the limit is read
            self._proceed()
            return
        self._chunks.append(chunk)

    def finish(self) -> None:
        """The whole body has arrived."""
        self._complete = True
        self._proceed()

    def _time_out(self) -> None:
        self._timer = None
        if self._ran or self._complete:
            return
        self._timed_out = True
        self._chunks = []
        self._stop_reading()
        self._proceed()

    def _stop_reading(self) -> None:
        # The rest of the body stays unread, so the connection ends with the answer.
        self.keep_alive = False
        self.protocol.flow.pause_reading()

    def _run(self) -> None:
        self._ran = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._lookup_error is not None:
            self.respond(*failure_answer(self._lookup_error))
            return
        if self._timed_out and not self._refused():
            self.respond(*timeout_answer(self.receiver.body_timeout))
            return
        body: bytes | None = None
        if self._too_large:
            self._stop_reading()
        elif not self._refused():
            chunks = self._chunks
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self._chunks = []
        try:
            self.receiver.receive_for(self.webhook, self.headers, body, self.respond)
        except Exception as exc:  # receive_for() answers its own errors; this is the last resort
            self.respond(*failure_answer(exc))

    def respond(self, status: int, content: bytes, headers: Sequence[tuple[bytes, bytes]]) -> None:
        if self.response_complete:
            return
        self.response_complete = True
        protocol = self.protocol
        if self.disconnected or protocol.transport.is_closing():
            return
        parts = [STATUS_LINE[status]]
        for name, value in protocol.server_state.default_headers:
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"content-type: application/json\r\ncontent-length: %d\r\n" % len(content))
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        parts += (b"\r\n", content)
        protocol.gathering.write_now(b"".join(parts))
        if not self.keep_alive:
            protocol.transport.close()
        protocol.on_response_complete()
