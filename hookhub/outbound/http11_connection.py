"""One kept-alive HTTP/1.1 client connection of ``Http11Transport`` and the response it awaits.

The response is parsed by ``httptools`` as it arrives, into a future. What a response may make
us read is bounded here: ``MAX_RESPONSE_BODY`` bytes of body (the rest is never read), and a
head of at most ``MAX_RESPONSE_HEAD`` bytes, ``MAX_HEADER_COUNT`` fields and ``MAX_HEADER_FIELD``
bytes a field (past them the attempt fails as ``response_too_large``). The parser joins a
header's pieces as they arrive, so an unbounded header would also cost quadratic copying.
Nothing here raises to the caller but :class:`Failure`, through the future.
"""

from __future__ import annotations

import asyncio

import httptools

from hookhub.outbound.transport import (
    MAX_HEADER_COUNT,
    MAX_HEADER_FIELD,
    MAX_RESPONSE_BODY,
    MAX_RESPONSE_HEAD,
    RESET_ERRNOS,
)

__all__ = ["Connection", "Failure"]


class Failure(Exception):
    """An attempt ended without a usable response: ``error`` class and a safe ``detail``."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail)
        self.error = error
        self.detail = detail


def head_too_large(what: str) -> Failure:
    return Failure("response_too_large", f"the response was refused: {what}")


class Connection(asyncio.Protocol):
    """One connection and the response it is waiting for, parsed as it arrives."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._reset_response()

    def _reset_response(self) -> None:
        self.status: int | None = None
        self.retry_after: str | None = None
        self.content_type: str | None = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False
        self.complete = False
        self.keep_alive = False
        self.length_known = False
        self._interim = False
        self.in_head = True
        self.head_size = 0
        self.header_count = 0

    # -- the request ---------------------------------------------------------------------------

    def send(self, data: bytes) -> asyncio.Future[None]:
        """Write a whole request; the future is done when its response is (or fails)."""
        assert self.transport is not None
        self._reset_response()
        self.parser = httptools.HttpResponseParser(self)
        self._waiter = self.loop.create_future()
        self.transport.write(data)
        return self._waiter

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self.complete:
            self.abort()  # bytes nobody asked for: the connection cannot be trusted
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            failure = exc.__context__
            if not isinstance(failure, Failure):
                failure = Failure("invalid_response", f"the response is not valid HTTP: {exc}")
            self._fail(failure)
            self.abort()
            return
        except httptools.HttpParserUpgrade:
            self._finish()  # a 101 answer: it is complete as it is, and not reusable
            self.abort()
            return
        except httptools.HttpParserError as exc:
            self._fail(Failure("invalid_response", f"the response is not valid HTTP: {exc}"))
            self.abort()
            return
        if self.in_head:
            # Still in the head, so all of this read was head (a response begins with the
            # first byte read): counted by reads, each parsed piece joins a bounded head.
            self.head_size += len(data)
            if self.head_size > MAX_RESPONSE_HEAD:
                self._fail(head_too_large(f"a head over {MAX_RESPONSE_HEAD} bytes"))
                self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        if self.status is not None and not self.length_known and not self._interim:
            self._finish()  # a body without a length ends with the connection
        elif isinstance(exc, OSError) and exc.errno in RESET_ERRNOS:
            self._fail(Failure("connection_reset", exc.strerror or type(exc).__name__))
        elif self.status is None:
            self._fail(
                Failure("connection_reset", "the server closed the connection without a response")
            )
        else:
            self._fail(Failure("invalid_response", "the connection closed mid-response"))

    # -- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.in_head = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        if len(name) + len(value) > MAX_HEADER_FIELD:
            raise head_too_large(f"a header field over {MAX_HEADER_FIELD} bytes")
        if self.header_count > MAX_HEADER_COUNT:
            raise head_too_large(f"more than {MAX_HEADER_COUNT} header fields")
        lowered = name.lower()
        if lowered == b"retry-after":
            self.retry_after = value.decode("latin-1")
        elif lowered == b"content-type":
            self.content_type = value.decode("latin-1")
        elif lowered in (b"content-length", b"transfer-encoding"):
            self.length_known = True

    def on_headers_complete(self) -> None:
        self.in_head = False
        status = self.parser.get_status_code()
        self._interim = 100 <= status < 200 and status != 101
        if not self._interim:
            self.status = status
            if status in (204, 304):
                self.length_known = True

    def on_body(self, body: bytes) -> None:
        if self.truncated:
            return
        room = MAX_RESPONSE_BODY - self.size
        if len(body) > room:
            self.chunks.append(body[:room])
            self.size = MAX_RESPONSE_BODY
            self.truncated = True
            self._finish()
            self.abort()  # the rest is never read; the connection cannot be reused
            return
        self.chunks.append(body)
        self.size += len(body)

    def on_message_complete(self) -> None:
        if self._interim:  # 100 Continue and friends: the real answer follows
            self._interim = False
            return
        self.keep_alive = self.parser.should_keep_alive()
        self._finish()

    # -- outcome -------------------------------------------------------------------------------

    def _finish(self) -> None:
        self.complete = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, failure: Failure) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(failure)

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.truncated and not self.closed
