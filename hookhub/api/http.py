"""The HTTP/1.1 protocol ``hookhub serve`` and ``hookhub api`` run: uvicorn's httptools
protocol, with each response written to the socket once, and ``POST /in/{token}`` received
without ASGI.

uvicorn writes a response's status line and headers as soon as the app starts the response,
and its body when the app sends it: two ``send()`` system calls, and on loopback or a fast
network two TCP segments, for what is almost always one small JSON answer. Under load those
two writes were the single largest cost of the receive path. Here the writes a response makes
within one turn of the event loop are gathered and handed to the socket together at the end
of that turn; nothing waits longer than that, and closing the connection writes first.

The receive path is the one providers time out on, and measured under load uvicorn's ASGI
cycle (a scope, a task, receive and send coroutines, header checks a request) cost about as
much as the receiver's own work. So :class:`HookhubHttpProtocol` takes ``POST /in/...``
itself: httptools parses it as for any request, the body is collected up to the receiver's
limit, and :meth:`InboundReceiver.receive <hookhub.inbound.receiver.InboundReceiver.receive>`
answers through a callback that writes the response (:class:`InboundExchange`). The protocol
then owns what uvicorn's cycle did: keep-alive, pipelined requests answered in order,
``Expect: 100-continue``, and the body limit (the connection is answered 413 and closed, the
rest of the body never read). Everything else, and any ``/in/`` request it does not take
(another method, a percent-encoded path), goes to the ASGI app as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

from uvicorn.config import Config, LifespanType
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from hookhub.inbound.receiver import PREFIX, InboundReceiver, declared_length, failure_answer

_PREFIX = PREFIX.encode()
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class GatheringTransport:
    """A transport whose writes within one event-loop turn reach the socket as one."""

    __slots__ = ("_loop", "_pending", "_scheduled", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._pending.append(bytes(data))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        if not self.transport.is_closing():
            self.transport.write(data)

    def is_closing(self) -> bool:  # asked on every response: not through __getattr__
        return self.transport.is_closing()

    def write_now(self, data: bytes) -> None:
        """Write ``data`` at once, after anything gathered before it."""
        if self._pending:
            self._pending.append(data)
            self.flush()
        elif not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def abort(self) -> None:
        self._pending.clear()
        self.transport.abort()

    def get_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:
        # Everything else (reading, flow control, extra info) is the real transport's.
        return getattr(self.transport, name)


class GatheringHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a :class:`GatheringTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # uvloop's transports do not derive from asyncio.Transport: no isinstance check here.
        gathering = GatheringTransport(transport, self.loop)
        super().connection_made(cast(asyncio.Transport, gathering))


class _NoEvent:
    """Stands for a cycle's ``message_event``, which uvicorn sets when the connection is lost."""

    __slots__ = ()

    def set(self) -> None:
        pass


class InboundExchange:
    """One ``POST /in/{token}`` on a connection: its body, then its one response.

    Quacks like uvicorn's ``RequestResponseCycle`` where the base protocol touches it
    (``response_complete``, ``keep_alive``, ``disconnected``, ``message_event``).
    """

    __slots__ = (
        "_chunks",
        "_complete",
        "_expect_continue",
        "_ran",
        "_size",
        "_started",
        "_too_large",
        "disconnected",
        "headers",
        "keep_alive",
        "protocol",
        "receiver",
        "response_complete",
        "token",
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
        self.token = token
        self.headers = headers
        self.keep_alive = keep_alive
        self.disconnected = False
        self.response_complete = False
        self._expect_continue = expect_continue
        self._chunks: list[bytes] = []
        self._size = 0
        self._complete = False
        self._started = False
        self._ran = False
        self._too_large = declared_length(headers) > receiver.max_body

    def start(self) -> None:
        """Its turn on the connection has come (at once, or after a pipelined request)."""
        self._started = True
        if self._complete or self._too_large:
            self._run()
        elif self._expect_continue:
            self.protocol.gathering.write_now(_CONTINUE)

    def feed(self, chunk: bytes) -> None:
        if self._too_large or self._ran:
            return
        self._size += len(chunk)
        if self._size > self.receiver.max_body:
            self._too_large = True
            self._chunks = []
            self.protocol.flow.pause_reading()  # nothing past the limit is read
            if self._started:
                self._run()
            return
        self._chunks.append(chunk)

    def finish(self) -> None:
        """The whole body has arrived."""
        self._complete = True
        if self._started and not self._ran:
            self._run()

    def _run(self) -> None:
        self._ran = True
        body: bytes | None = None
        if self._too_large:
            # The rest of the body stays unread, so the connection ends with the answer.
            self.keep_alive = False
            self.protocol.flow.pause_reading()
        else:
            chunks = self._chunks
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self._chunks = []
        try:
            self.receiver.receive(self.token, self.headers, body, self.respond)
        except Exception as exc:  # receive() answers its own errors; this is the last resort
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


class HookhubHttpProtocol(GatheringHttpToolsProtocol):
    """:class:`GatheringHttpToolsProtocol` taking ``POST /in/{token}`` itself."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # The app as uvicorn runs it: if uvicorn wrapped it (proxy headers, trace logging) or
        # would answer 503 past a concurrency limit or log each access, every request stays
        # on the ASGI path so that those keep working.
        receiver = getattr(self.app, "receiver", None)
        self.receiver = (
            receiver
            if isinstance(receiver, InboundReceiver)
            and self.limit_concurrency is None
            and not self.access_log
            else None
        )
        self.gathering: GatheringTransport = None  # type: ignore[assignment]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.gathering = cast(GatheringTransport, self.transport)

    def on_headers_complete(self) -> None:
        receiver = self.receiver
        url = self.url
        if (
            receiver is None
            or not url.startswith(_PREFIX)
            or self.parser.get_method() != b"POST"
            or b"%" in url
            or b"#" in url
            or self.parser.should_upgrade()
        ):
            super().on_headers_complete()
            return
        try:
            token = url.partition(b"?")[0][len(_PREFIX) :].decode("ascii")
        except UnicodeDecodeError:
            super().on_headers_complete()
            return
        exchange = InboundExchange(
            self,
            receiver,
            token,
            self.headers,
            keep_alive=self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive(),
            expect_continue=self.expect_100_continue,
        )
        existing = self.cycle
        self.cycle = exchange  # type: ignore[assignment]
        if existing is None or existing.response_complete:
            exchange.start()
        else:  # pipelined: answered in turn, as uvicorn queues its own cycles
            self.flow.pause_reading()
            self.pipeline.appendleft((exchange, self.app))  # type: ignore[arg-type]

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if isinstance(cycle, InboundExchange):
            cycle.start()
        else:
            super()._start_asgi_task(cycle, app)

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if isinstance(cycle, InboundExchange):
            cycle.feed(body)
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        cycle = self.cycle
        if isinstance(cycle, InboundExchange):
            cycle.finish()
        else:
            super().on_message_complete()


def server_config(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    lifespan: LifespanType = "on",
    timeout_graceful_shutdown: int = 30,
) -> Config:
    """How ``hookhub serve`` and ``hookhub api`` run uvicorn (the tests run it the same way)."""
    return Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=HookhubHttpProtocol,
        log_config=None,
        access_log=False,
        # Nothing reads the client's address, so X-Forwarded-For is not worth a layer per
        # request; and the answer does not advertise the server.
        proxy_headers=False,
        server_header=False,
        lifespan=lifespan,
        timeout_graceful_shutdown=timeout_graceful_shutdown,
    )
