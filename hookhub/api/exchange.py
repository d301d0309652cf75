"""One ``POST /in/{token}`` taken by Hookhub's HTTP protocol (``hookhub.api.http``), without ASGI.

:class:`InboundExchange` is what the protocol keeps for such a request instead of uvicorn's
request cycle: its webhook (looked up as soon as the headers are in), its body (up to the
receiver's limit, within its ``body_timeout``), then its one response, written in one piece.
It must never read a body it will not use, nor answer twice.
"""

from __future__ import annotations

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

# Where the body stands: still coming, or why it is no longer awaited.
_COMING = "coming"
_COMPLETE = "complete"
_TOO_LARGE = "too large"
_TIMED_OUT = "timed out"
_ABANDONED = "abandoned"


class _NoEvent:
    """Stands for a cycle's ``message_event``, which uvicorn sets when the connection is lost."""

    __slots__ = ()

    def set(self) -> None:
        pass


class DirectExchange:
    """A request ``HookhubHttpProtocol`` answers itself, without ASGI: it is handed the body
    (``feed``), its end (``finish``) and its turn (``start``) in place of uvicorn's cycle."""

    __slots__ = ()

    def start(self) -> None:
        raise NotImplementedError

    def feed(self, chunk: bytes) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError


class InboundExchange(DirectExchange):
    """One ``POST /in/{token}`` on a connection: its webhook, its body, then its one response.

    The webhook is looked up as soon as the headers are in; an unknown one is answered 404
    without reading the body, and a body that does not arrive within the receiver's
    ``body_timeout`` of its turn is answered 408. Either ends the connection. Quacks like
    uvicorn's ``RequestResponseCycle`` where the base protocol touches it (``response_complete``,
    ``keep_alive``, ``disconnected``, ``message_event``).
    """

    __slots__ = (
        "_body",
        "_chunks",
        "_continue_sent",
        "_expect_continue",
        "_looked_up",
        "_lookup_error",
        "_ran",
        "_size",
        "_started",
        "_wanted",
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
        self._body = _TOO_LARGE if declared_length(headers) > receiver.max_body else _COMING
        self._started = False
        self._ran = False
        self._looked_up = False
        self._wanted = False
        """The webhook exists and takes requests (known once looked up)."""
        self._lookup_error: BaseException | None = None
        receiver.find(token, self._found)

    def _found(self, webhook: InboundWebhook | None, error: BaseException | None) -> None:
        self._looked_up = True
        self.webhook = webhook
        self._lookup_error = error
        self._wanted = error is None and webhook is not None and webhook.enabled
        if not self._wanted and self._body is _COMING:
            # Whatever of the body came with the headers is read first (a small one then
            # keeps the connection); the rest is never read.
            self.protocol.loop.call_soon(self._abandon_body)
        elif self._started:
            self._proceed()

    def _abandon_body(self) -> None:
        if self._body is _COMING:
            self._body = _ABANDONED
            self._chunks = []
            self._stop_reading()
        self._proceed()

    def start(self) -> None:
        """Its turn on the connection has come (at once, or after a pipelined request)."""
        self._started = True
        if self._body is _COMING:
            # Most bodies come in the read that brought the headers: answered before the
            # sweep ever looks at this deadline.
            self.protocol.body_deadlines.add(self)
        self._proceed()

    def _proceed(self) -> None:
        """Answer if everything needed is known; else ask for the body if the sender waits."""
        if self._ran or not (self._started and self._looked_up):
            return
        if self._body is not _COMING:
            self._run()
        elif self._expect_continue and not self._continue_sent:
            self._continue_sent = True
            self.protocol.gathering.write_now(_CONTINUE)

    def feed(self, chunk: bytes) -> None:
        if self._body is not _COMING:
            return
        self._size += len(chunk)
        if self._size > self.receiver.max_body:
            self._body = _TOO_LARGE
            self._chunks = []
            self._stop_reading()  # nothing past the limit is read
            self._proceed()
            return
        self._chunks.append(chunk)

    def finish(self) -> None:
        """The whole body has arrived."""
        if self._body is _COMING:
            self._body = _COMPLETE
            self._proceed()

    def expire(self) -> None:
        """The body's deadline passed (``Deadlines`` calls this)."""
        if self._body is _COMING and not self._ran:
            self._body = _TIMED_OUT
            self._chunks = []
            self._stop_reading()
            self._proceed()

    def _stop_reading(self) -> None:
        # The rest of the body stays unread, so the connection ends with the answer.
        self.keep_alive = False
        self.protocol.flow.pause_reading()

    def _run(self) -> None:
        self._ran = True
        self.protocol.body_deadlines.discard(self)
        if self._lookup_error is not None:
            self.respond(*failure_answer(self._lookup_error))
            return
        state = self._body
        body: bytes | None = None
        if state is _TOO_LARGE:
            self._stop_reading()
        elif not self._wanted:
            pass  # answered 404 without its body
        elif state is _TIMED_OUT:
            self.respond(*timeout_answer(self.receiver.body_timeout))
            return
        elif state is _COMPLETE:
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
        protocol.on_inbound_response_complete()
