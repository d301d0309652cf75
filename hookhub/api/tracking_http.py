"""The tracking routes (``/t/...``) taken by Hookhub's HTTP protocol without ASGI, as ``/in/`` is.

Opens come in bursts when a campaign lands, and each is a tiny GET whose answer waits for a
group commit: uvicorn's ASGI cycle (a scope, a task, receive and send coroutines) would cost
more than the receiver's own work. :class:`TrackingHttpProtocol` is
:class:`~hookhub.api.http.HookhubHttpProtocol` taking every ``/t/`` request of this process's
:class:`~hookhub.email.tracking_receiver.TrackingReceiver` itself, and leaving everything else
to it unchanged; :class:`TrackingExchange` is what it keeps for such a request instead of
uvicorn's cycle: keep-alive, pipelined requests answered in order, ``Expect: 100-continue``, a
body (an unsubscribe POST's) read and dropped up to ``MAX_BODY`` (past it: 413 and the
connection closed) within ``BODY_TIMEOUT`` (408), and one response written in one piece.

It must never answer twice, nor read a body past its limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE
from uvicorn.server import ServerState

from hookhub.api.exchange import DirectExchange
from hookhub.api.http import HookhubHttpProtocol
from hookhub.email import tracking_answers as answers
from hookhub.email.tracking_answers import Header
from hookhub.email.tracking_receiver import MAX_BODY, PREFIX, TrackingReceiver

_PREFIX = PREFIX.encode()
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
BODY_TIMEOUT = 30.0
"""Seconds an unsubscribe POST's body may take to arrive once its turn has come."""
_TIMED_OUT = answers.error_answer(408, "request_timeout", "The body did not arrive in time.")


class _NoEvent:
    __slots__ = ()

    def set(self) -> None:
        pass


class TrackingExchange(DirectExchange):
    """One ``/t/`` request on a connection; quacks like uvicorn's ``RequestResponseCycle``
    where the base protocol touches it (``response_complete``, ``keep_alive``,
    ``disconnected``, ``message_event``)."""

    __slots__ = (
        "_complete",
        "_continue",
        "_ran",
        "_size",
        "_started",
        "_timer",
        "disconnected",
        "head",
        "headers",
        "ip",
        "keep_alive",
        "method",
        "path",
        "protocol",
        "receiver",
        "response_complete",
    )
    message_event = _NoEvent()

    def __init__(
        self,
        protocol: TrackingHttpProtocol,
        receiver: TrackingReceiver,
        method: str,
        path: str,
        *,
        keep_alive: bool,
        expect_continue: bool,
    ) -> None:
        self.protocol = protocol
        self.receiver = receiver
        self.method = method
        self.head = method == "HEAD"
        self.path = path
        self.headers = protocol.headers
        client = protocol.client
        self.ip = str(client[0]) if client else None
        self.keep_alive = keep_alive
        self.disconnected = False
        self.response_complete = False
        self._continue = expect_continue
        self._complete = False
        self._started = False
        self._ran = False
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Its turn on the connection has come (at once, or after a pipelined request)."""
        self._started = True
        if self._complete:
            self._run()
            return
        if self._continue:
            self._continue = False
            self.protocol.gathering.write_now(_CONTINUE)
        # Armed after the read being parsed: a GET is complete in the read of its headers.
        self.protocol.loop.call_soon(self._arm_deadline)

    def _arm_deadline(self) -> None:
        if not (self._ran or self._complete or self._timer is not None):
            self._timer = self.protocol.loop.call_later(BODY_TIMEOUT, self._time_out)

    def feed(self, chunk: bytes) -> None:
        if self._ran:
            return
        self._size += len(chunk)
        if self._size > MAX_BODY:
            self._stop_reading()
            self._ran = True
            self.respond(*answers.TOO_LARGE)

    def finish(self) -> None:
        self._complete = True
        if self._started:
            self._run()

    def _time_out(self) -> None:
        self._timer = None
        if not self._ran:
            self._stop_reading()
            self._ran = True
            self.respond(*_TIMED_OUT)

    def _stop_reading(self) -> None:
        # The rest of the body stays unread, so the connection ends with the answer.
        self.keep_alive = False
        self.protocol.flow.pause_reading()

    def _run(self) -> None:
        if self._ran:
            return
        self._ran = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.receiver.receive(self.method, self.path, self.headers, self.ip, self.respond)

    def respond(self, status: int, headers: Sequence[Header], body: bytes) -> None:
        if self.response_complete:
            return
        self.response_complete = True
        protocol = self.protocol
        if self.disconnected or protocol.transport.is_closing():
            return
        parts = [STATUS_LINE[status]]
        for name, value in protocol.server_state.default_headers:
            parts += (name, b": ", value, b"\r\n")
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"content-length: %d\r\n" % len(body))
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        if not self.head:
            parts.append(body)
        protocol.gathering.write_now(b"".join(parts))
        if not self.keep_alive:
            protocol.transport.close()
        if protocol.swept_keep_alive:
            protocol.on_inbound_response_complete()  # no loop timer armed per response
        else:
            protocol.on_response_complete()


class TrackingHttpProtocol(HookhubHttpProtocol):
    """:class:`HookhubHttpProtocol` taking ``/t/...`` itself too."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # As for /in/: if uvicorn wraps the app or limits or logs requests, ASGI it is.
        tracking = getattr(self.app, "tracking", None)
        self.tracking = (
            tracking
            if isinstance(tracking, TrackingReceiver)
            and self.limit_concurrency is None
            and not config.access_log
            else None
        )
        # The receive path's swept keep-alive exists when the protocol takes /in/ (always,
        # under hookhub serve and api); otherwise uvicorn's timer per response.
        self.swept_keep_alive = self.receiver is not None

    def on_headers_complete(self) -> None:
        tracking = self.tracking
        url = self.url
        if tracking is None or not url.startswith(_PREFIX) or self.parser.should_upgrade():
            super().on_headers_complete()
            return
        self._head_complete()
        parser = self.parser
        exchange = TrackingExchange(
            self,
            tracking,
            parser.get_method().decode("ascii", "replace"),
            url.partition(b"?")[0].decode("latin-1"),
            keep_alive=parser.get_http_version() != "1.0" and parser.should_keep_alive(),
            expect_continue=self.expect_100_continue,
        )
        self._take(exchange)
