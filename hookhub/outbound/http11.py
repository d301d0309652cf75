"""A lean HTTP/1.1 transport for deliveries: one request, one response, kept-alive connections.

The delivery worker sends one small POST after another to a handful of endpoints and needs only
the status, ``Retry-After`` and the start of the body back. Through ``aiohttp.ClientSession``
each of those cost ~55 us of CPU (request objects, header multidicts, a task to write the
body, stream readers); here the request is written with one ``write()`` and the response is
parsed by ``httptools`` (the C parser the server side already uses) into a future: ~15 us. On
one core that is what decides how many deliveries a worker makes per second.

Same contract as :class:`~hookhub.outbound.sender.AiohttpTransport`: never raises for a network
problem, never sends a byte to an address the destination policy refuses (names are resolved
here and the checked address is the one dialled), never follows a redirect, never reads more
than ``MAX_RESPONSE_BODY`` bytes of a response body (a longer one is cut and its connection
closed) nor a head past ``MAX_RESPONSE_HEAD`` bytes, ``MAX_HEADER_COUNT`` fields or a field past
``MAX_HEADER_FIELD`` bytes (the attempt fails as ``response_too_large``: the parser joins a
header's pieces as they arrive, so an unbounded one costs quadratic copying), and never puts
the URL's path or query, headers or secrets into an error detail. http and https; no proxies
(an environment proxy would bypass the destination guard).
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import httptools
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from hookhub.core.urlguard import DestinationPolicy
from hookhub.outbound.transport import (
    MAX_ERROR_DETAIL,
    MAX_HEADER_COUNT,
    MAX_HEADER_FIELD,
    MAX_RESPONSE_BODY,
    MAX_RESPONSE_HEAD,
    RESET_ERRNOS,
    AttemptResult,
    DestinationRefused,
    GuardedResolver,
    TransportBase,
    decode_body,
    parse_ip,
)

__all__ = ["Http11Transport"]

IDLE_SECONDS = 30.0
"""An unused kept-alive connection is closed after this long."""
MAX_IDLE_PER_ORIGIN = 256
_DEFAULT_PORTS = {"http": 80, "https": 443}


class _InvalidURL(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    host: str
    """The name or address, without brackets."""
    port: int
    head: bytes
    """The request line and Host header."""

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port


@functools.lru_cache(maxsize=4096)
def _target(url: str) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError as exc:
        raise _InvalidURL(str(exc)) from exc
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or port is None:
        raise _InvalidURL("only absolute http and https URLs can be requested")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")  # an internationalised name
        except UnicodeError as exc:
            raise _InvalidURL("the host name cannot be encoded") from exc
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    # Sent as it is when it can be; anything else percent-encoded (never a raw space or CR/LF).
    path = quote(path, safe="!#$%&'()*+,/:;=?@[]~")
    authority = f"[{host}]" if ":" in host else host
    if port != _DEFAULT_PORTS[scheme]:
        authority += f":{port}"
    head = f"POST {path} HTTP/1.1\r\nHost: {authority}\r\n".encode("ascii")
    return _Target(scheme, host, port, head)


class _Failure(Exception):
    """An attempt ended without a usable response: ``error`` class and a safe ``detail``."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail)
        self.error = error
        self.detail = detail


def _head_too_large(what: str) -> _Failure:
    return _Failure("response_too_large", f"the response was refused: {what}")


class _Connection(asyncio.Protocol):
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
            if not isinstance(failure, _Failure):
                failure = _Failure("invalid_response", f"the response is not valid HTTP: {exc}")
            self._fail(failure)
            self.abort()
            return
        except httptools.HttpParserUpgrade:
            self._finish()  # a 101 answer: it is complete as it is, and not reusable
            self.abort()
            return
        except httptools.HttpParserError as exc:
            self._fail(_Failure("invalid_response", f"the response is not valid HTTP: {exc}"))
            self.abort()
            return
        if self.in_head:
            # Still in the head, so all of this read was head (a response begins with the
            # first byte read): counted by reads, each parsed piece joins a bounded head.
            self.head_size += len(data)
            if self.head_size > MAX_RESPONSE_HEAD:
                self._fail(_head_too_large(f"a head over {MAX_RESPONSE_HEAD} bytes"))
                self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        if self.status is not None and not self.length_known and not self._interim:
            self._finish()  # a body without a length ends with the connection
        elif isinstance(exc, OSError) and exc.errno in RESET_ERRNOS:
            self._fail(_Failure("connection_reset", exc.strerror or type(exc).__name__))
        elif self.status is None:
            self._fail(
                _Failure("connection_reset", "the server closed the connection without a response")
            )
        else:
            self._fail(_Failure("invalid_response", "the connection closed mid-response"))

    # -- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.in_head = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        if len(name) + len(value) > MAX_HEADER_FIELD:
            raise _head_too_large(f"a header field over {MAX_HEADER_FIELD} bytes")
        if self.header_count > MAX_HEADER_COUNT:
            raise _head_too_large(f"more than {MAX_HEADER_COUNT} header fields")
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

    def _fail(self, failure: _Failure) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(failure)

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.truncated and not self.closed


class Http11Transport(TransportBase):
    """Keep-alive connections per origin; the destination policy checks every address dialled.

    ``resolver`` replaces the system resolver (aiohttp's ``ThreadedResolver``), e.g. to map
    test names to loopback addresses; it is always wrapped by the destination policy.
    Connections are opened inside the running loop on first use, so constructing one is free.
    """

    def __init__(
        self,
        *,
        policy: DestinationPolicy,
        user_agent: str,
        resolver: AbstractResolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(user_agent=user_agent)
        self._policy = policy
        self._resolver = GuardedResolver(resolver or ThreadedResolver(), policy)
        self._ssl_context = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._busy: set[_Connection] = set()
        self._swept_at = 0.0
        self._closed = False

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> AttemptResult:
        if self._closed:
            raise RuntimeError("Http11Transport is closed")
        started = time.perf_counter()
        connection: _Connection | None = None
        try:
            target = _target(url)
            request = self._request(target, body, headers)
            async with asyncio.timeout(timeout):
                connection = await self._connection(target)
                self._busy.add(connection)
                await connection.send(request)
        except _InvalidURL:
            return _result(started, None, "invalid_url", "the URL cannot be requested")
        except _Failure as failure:
            status = None
            if connection is not None:
                status = connection.status
                connection.abort()
            return _result(started, status, failure.error, failure.detail)
        except TimeoutError:
            status = connection.status if connection is not None else None
            if connection is not None:
                connection.abort()
            stage = "reading the response" if status is not None else "waiting for a response"
            return _result(
                started, status, "timeout", f"no complete response within {timeout:g} s ({stage})"
            )
        finally:
            if connection is not None:
                self._busy.discard(connection)
        content_type = connection.content_type
        text = decode_body(b"".join(connection.chunks), lambda: _charset(content_type))
        result = AttemptResult(
            status_code=connection.status,
            duration_ms=(time.perf_counter() - started) * 1000,
            error=None,
            error_detail=None,
            response_body=text,
            retry_after=connection.retry_after,
        )
        if connection.reusable:
            self._give_back(target, connection)
        else:
            connection.close()
        return result

    def _request(self, target: _Target, body: bytes, headers: Mapping[str, str]) -> bytes:
        lines = [target.head]
        for name, value in self._with_defaults(headers).items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
                raise _Failure("invalid_request", f"header {name!r} cannot be sent")
            lines.append(f"{name}: {value}\r\n".encode("latin-1", "replace"))
        lines.append(b"Content-Length: %d\r\n\r\n" % len(body))
        lines.append(body)
        return b"".join(lines)

    # -- connections ---------------------------------------------------------------------------

    async def _connection(self, target: _Target) -> _Connection:
        now = time.monotonic()
        if now - self._swept_at > IDLE_SECONDS / 2:
            self._sweep(now)
        idle = self._idle.get(target.origin)
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < IDLE_SECONDS:
                return connection
            connection.close()
        return await self._connect(target)

    def _give_back(self, target: _Target, connection: _Connection) -> None:
        if self._closed:
            connection.close()
            return
        idle = self._idle.setdefault(target.origin, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    def _sweep(self, now: float) -> None:
        self._swept_at = now
        for origin, idle in list(self._idle.items()):
            keep = [c for c in idle if not c.closed and now - c.idle_since < IDLE_SECONDS]
            for connection in idle:
                if connection not in keep:
                    connection.close()
            if keep:
                self._idle[origin] = keep
            else:
                del self._idle[origin]

    async def _addresses(self, target: _Target) -> list[tuple[socket.AddressFamily, str]]:
        try:
            literal = parse_ip(target.host)
        except ValueError:
            literal = None
        if literal is not None:
            reason = self._policy.refusal(literal)
            if reason is not None:
                raise _Failure("destination_refused", str(DestinationRefused(target.host, reason)))
            family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
            return [(family, str(literal))]
        try:
            resolved: list[ResolveResult] = await self._resolver.resolve(
                target.host, target.port, socket.AF_UNSPEC
            )
        except DestinationRefused as exc:
            raise _Failure("destination_refused", str(exc)) from exc
        except OSError as exc:
            cause = exc.strerror or str(exc) or type(exc).__name__
            raise _Failure("dns_error", f"cannot resolve {target.host}: {cause}") from exc
        if not resolved:
            raise _Failure("dns_error", f"cannot resolve {target.host}: no address")
        return [(socket.AddressFamily(r["family"]), r["host"]) for r in resolved]

    async def _connect(self, target: _Target) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = target.scheme == "https"
        context = (self._ssl_context or _default_ssl_context()) if tls else None
        failure: _Failure | None = None
        for family, address in await self._addresses(target):
            # Judged again right before dialling: the address connected to is the one checked.
            reason = self._policy.refusal(parse_ip(address))
            if reason is not None:
                failure = _Failure("destination_refused", str(DestinationRefused(address, reason)))
                continue
            try:
                _transport, connection = await loop.create_connection(
                    lambda: _Connection(loop),
                    host=address,
                    port=target.port,
                    family=family,
                    ssl=context,
                    server_hostname=target.host if tls else None,
                )
                return connection
            except ssl.SSLError as exc:
                failure = _Failure(
                    "tls_error", f"TLS handshake with {target.host}:{target.port} failed: {exc}"
                )
            except OSError as exc:
                cause = exc.strerror or type(exc).__name__
                failure = _Failure(
                    "connect_error", f"cannot connect to {target.host}:{target.port}: {cause}"
                )
        assert failure is not None
        raise failure

    async def close(self) -> None:
        """Close every connection; idempotent."""
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
        for connection in list(self._busy):
            connection.abort()
        self._busy.clear()


@functools.lru_cache(maxsize=1)
def _default_ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


def _result(started: float, status: int | None, error: str, detail: str) -> AttemptResult:
    return AttemptResult(
        status_code=status,
        duration_ms=(time.perf_counter() - started) * 1000,
        error=error,
        error_detail=detail[:MAX_ERROR_DETAIL],
        response_body=None,
        retry_after=None,
    )
