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
copying; reads are counted before a header is whole. What every request pays for this is
little: a head that comes in one read no longer than a header field's limit cannot be past
the field or total limit, so only its header count is checked; the fields and the total are
counted only for longer reads and for heads split across reads.

Timeouts on the receive path (the body's deadline, keep-alive after an answer) are swept
(``hookhub.api.deadlines``) instead of a loop timer armed and cancelled for every request.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import httptools
from uvicorn.config import Config, LifespanType
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from hookhub.api.deadlines import Deadlines, deadlines_for
from hookhub.api.exchange import DirectExchange, InboundExchange
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
        self.body_deadlines: Deadlines = None  # type: ignore[assignment]
        self._keep_alive: SweptKeepAlive = None  # type: ignore[assignment]
        self._read_size = 0
        self._head_done: list[tuple[bytes, bytes]] | None = None
        """The headers of the last complete head: ``self.headers`` is another list while a
        head is being read."""
        self._head_spans_reads = False
        self._head_size = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.gathering = cast(GatheringTransport, self.transport)
        if self.receiver is not None:
            state, loop = self.server_state, self.loop
            self.body_deadlines = deadlines_for(state, loop, self.receiver.body_timeout)
            keep_alive = deadlines_for(state, loop, float(self.timeout_keep_alive))
            self._keep_alive = SweptKeepAlive(self, keep_alive)

    # -- the request head's limits -------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        # uvicorn's, but every refusal answered in JSON, and the head's size bounded.
        self._unset_keepalive_if_required()
        self._read_size = len(data)
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
        if self.headers is not self._head_done:
            self._head_continues()

    def _head_continues(self) -> None:
        """A head is not complete at the end of a read: count it now, before the next read.

        The parser joins a header's pieces as they arrive, so reads are counted as they come,
        before a header is whole: of the read where the head began, what was parsed of it;
        every later read whole.
        """
        if self._head_spans_reads:
            self._head_size += self._read_size
        else:
            self._head_spans_reads = True
            self._head_size = _head_size(self.url, self.headers)
        if self._head_size > MAX_REQUEST_HEAD:
            self._refuse(HeadersTooLarge(f"The request head is over {MAX_REQUEST_HEAD} bytes."))

    def on_message_begin(self) -> None:
        # uvicorn's, without the ASGI scope: it is built only for a request that goes the ASGI
        # way (see _begin_asgi), never for the receive path's own.
        self.url = b""
        self.expect_100_continue = False
        self.headers = []

    def _begin_asgi(self) -> None:
        """uvicorn's on_message_begin for this request, now that it goes the ASGI way."""
        url, headers, expect = self.url, self.headers, self.expect_100_continue
        super().on_message_begin()
        self.url, self.headers, self.expect_100_continue = url, headers, expect
        self.scope["headers"] = headers

    def _check_head(self) -> None:
        """Every limit of a complete head, read in full; raises HeadersTooLarge."""
        self._head_spans_reads = False
        if len(self.headers) > MAX_REQUEST_HEADERS:
            raise HeadersTooLarge(f"The request has more than {MAX_REQUEST_HEADERS} headers.")
        for name, value in self.headers:
            if len(name) + len(value) > MAX_REQUEST_HEADER_FIELD:
                raise HeadersTooLarge(f"A header field is over {MAX_REQUEST_HEADER_FIELD} bytes.")
        if _head_size(self.url, self.headers) > MAX_REQUEST_HEAD:
            raise HeadersTooLarge(f"The request head is over {MAX_REQUEST_HEAD} bytes.")

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

    def _head_complete(self) -> None:
        """The head is in: check its limits (raises HeadersTooLarge). Every request's
        ``on_headers_complete`` calls this first, a subclass's own routes too."""
        headers = self.headers
        self._head_done = headers
        # A head that came in one read of at most a header field's size can only be over
        # the header count: the field and total limits are checked only past that.
        if (
            self._head_spans_reads
            or self._read_size > MAX_REQUEST_HEADER_FIELD
            or len(headers) > MAX_REQUEST_HEADERS
        ):
            self._check_head()

    def on_headers_complete(self) -> None:
        self._head_complete()
        headers = self.headers
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
            self._begin_asgi()
            super().on_headers_complete()
            return
        try:
            token = url.partition(b"?")[0][len(_PREFIX) :].decode("ascii")
        except UnicodeDecodeError:
            self._begin_asgi()
            super().on_headers_complete()
            return
        exchange = InboundExchange(
            self,
            receiver,
            token,
            headers,
            keep_alive=self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive(),
            expect_continue=self.expect_100_continue,
        )
        self._take(exchange)

    def _take(self, exchange: DirectExchange) -> None:
        """Answer the request whose head just ended with ``exchange`` instead of an ASGI
        cycle."""
        existing = self.cycle
        self.cycle = exchange  # type: ignore[assignment]
        if existing is None or existing.response_complete:
            exchange.start()
        else:  # pipelined: answered in turn, as uvicorn queues its own cycles
            self.flow.pause_reading()
            self.pipeline.appendleft((exchange, self.app))  # type: ignore[arg-type]

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if isinstance(cycle, DirectExchange):
            cycle.start()
        else:
            super()._start_asgi_task(cycle, app)

    def on_body(self, body: bytes) -> None:
        cycle: Any = self.cycle
        if isinstance(cycle, DirectExchange):
            cycle.feed(body)
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        cycle: Any = self.cycle
        if isinstance(cycle, DirectExchange):
            cycle.finish()
        else:
            super().on_message_complete()

    def on_inbound_response_complete(self) -> None:
        """uvicorn's on_response_complete, with the keep-alive timeout swept (``deadlines``)
        rather than a loop timer armed after every response and cancelled by the next read."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._keep_alive.arm()


class SweptKeepAlive:
    """uvicorn's keep-alive timer of one connection, as an entry of a :class:`Deadlines`.

    Stands where uvicorn keeps its ``TimerHandle`` (``timeout_keep_alive_task``), so uvicorn's
    own code cancels it: on the next read, the next response, or the connection's end.
    """

    __slots__ = ("deadlines", "protocol")

    def __init__(self, protocol: HookhubHttpProtocol, deadlines: Deadlines) -> None:
        self.protocol = protocol
        self.deadlines = deadlines

    def arm(self) -> None:
        self.deadlines.add(self)
        self.protocol.timeout_keep_alive_task = self  # type: ignore[assignment]

    def cancel(self) -> None:
        self.deadlines.discard(self)

    def expire(self) -> None:
        self.protocol.timeout_keep_alive_task = None
        self.protocol.timeout_keep_alive_handler()


def _head_size(url: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """The bytes of a request line's target and header fields, as the limits count them."""
    return len(url) + sum(len(name) + len(value) + 4 for name, value in headers)


def server_config(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    lifespan: LifespanType = "on",
    timeout_graceful_shutdown: int = 30,
) -> Config:
    """How ``hookhub serve`` and ``hookhub api`` run uvicorn (the tests run it the same way)."""
    from hookhub.api.tracking_http import TrackingHttpProtocol  # it builds on this module

    return Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=TrackingHttpProtocol,  # HookhubHttpProtocol taking /t/ too
        log_config=None,
        access_log=False,
        # Nothing reads the client's address, so X-Forwarded-For is not worth a layer per
        # request; and the answer does not advertise the server.
        proxy_headers=False,
        server_header=False,
        lifespan=lifespan,
        timeout_graceful_shutdown=timeout_graceful_shutdown,
    )
