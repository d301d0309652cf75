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
itself: httptools parses it as for any request, its webhook is looked up as soon as the headers
are in, the body is collected up to the receiver's limit and within its time, and
:meth:`InboundReceiver.receive_for <hookhub.inbound.receiver.InboundReceiver.receive_for>`
answers through a callback that writes the response (``hookhub.api.exchange``). The protocol
then owns what uvicorn's cycle did: keep-alive, pipelined requests answered in order,
``Expect: 100-continue``, and the body limit (the connection is answered 413 and closed, the
rest of the body never read). Everything else, and any ``/in/`` request it does not take
(another method, a percent-encoded path), goes to the ASGI app as before.

Every request's head is bounded here (``MAX_REQUEST_HEADER_FIELD``, ``MAX_REQUEST_HEADERS``,
``MAX_REQUEST_HEAD``): past them the answer is 431 in JSON and the connection is closed. The
parser joins a header's pieces as they arrive, so an unbounded header would also cost quadratic
copying; reads are counted before a header is whole.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import httptools
from uvicorn.config import Config, LifespanType
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from hookhub.api.exchange import InboundExchange
from hookhub.core import jsoncodec
from hookhub.errors import BadRequest, HeadersTooLarge, HookhubError
from hookhub.inbound.receiver import PREFIX, InboundReceiver

_PREFIX = PREFIX.encode()

MAX_REQUEST_HEADER_FIELD = 8 * 1024
"""Bytes of one request header (name and value), as aiohttp's server allows; past it, 431."""
MAX_REQUEST_HEADERS = 100
"""Header fields of one request; past it, 431."""
MAX_REQUEST_HEAD = 64 * 1024
"""Bytes of a request's line and headers together; past it, 431."""


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
        # on the ASGI path so that those keep working. (The configured access log, not
        # ``self.access_log``: that one is whether the logger has handlers at this moment,
        # which a test's log capture changes while the server runs.)
        receiver = getattr(self.app, "receiver", None)
        self.receiver = (
            receiver
            if isinstance(receiver, InboundReceiver)
            and self.limit_concurrency is None
            and not config.access_log
            else None
        )
        self.gathering: GatheringTransport = None  # type: ignore[assignment]
        self._in_head = False
        self._began_in_this_read = False
        self._head_size = 0
        self.feeding = False
        """Whether a read is being parsed (an exchange started then arms its deadline after)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.gathering = cast(GatheringTransport, self.transport)

    # -- the request head's limits -------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        # uvicorn's, but every refusal answered in JSON, and the head's size bounded.
        self._unset_keepalive_if_required()
        self._began_in_this_read = False
        self.feeding = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, HeadersTooLarge):
                self._refuse(exc.__context__)
            else:
                self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserError:
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        finally:
            self.feeding = False
        cycle: Any = self.cycle
        if cycle.__class__ is InboundExchange:
            # Most bodies come with their headers: no deadline is armed for those.
            cycle.arm_deadline()
        if self._in_head and not self._began_in_this_read:
            # A head arriving in many reads: the parser joins the pieces of a header, so the
            # reads are counted as they come, before the header is whole.
            self._head_size += len(data)
            if self._head_size > MAX_REQUEST_HEAD:
                self._refuse(HeadersTooLarge(f"The request head is over {MAX_REQUEST_HEAD} bytes."))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._began_in_this_read = True
        self._head_size = 0

    # uvicorn's on_url and on_header, inlined (they run for every header of every request)
    # and counting the head; its whole size is checked once, when it is complete.

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value)
        headers = self.headers
        if size > MAX_REQUEST_HEADER_FIELD:
            raise HeadersTooLarge(f"A header field is over {MAX_REQUEST_HEADER_FIELD} bytes.")
        if len(headers) >= MAX_REQUEST_HEADERS:
            raise HeadersTooLarge(f"The request has more than {MAX_REQUEST_HEADERS} headers.")
        self._head_size += size + 4
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        headers.append((name, value))

    def send_400_response(self, msg: str) -> None:
        self._refuse(BadRequest(msg))

    def _refuse(self, error: HookhubError) -> None:
        """Answer ``error`` in JSON and close: the rest of what was sent is never read."""
        content = jsoncodec.dumps({"error": error.to_dict()})
        parts = [STATUS_LINE[error.status]]
        for name, value in self.server_state.default_headers:
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"content-type: application/json\r\ncontent-length: %d\r\n" % len(content))
        parts += (b"connection: close\r\n\r\n", content)
        self.transport.write(b"".join(parts))
        self.transport.close()

    # -- POST /in/{token} ----------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_size > MAX_REQUEST_HEAD:
            raise HeadersTooLarge(f"The request head is over {MAX_REQUEST_HEAD} bytes.")
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
