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
``MAX_HEADER_FIELD`` bytes (``http11_connection``; the attempt fails as ``response_too_large``: a
header is joined as its pieces arrive, so an unbounded one costs quadratic copying), never puts
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

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from hookhub.core.urlguard import DestinationPolicy
from hookhub.outbound.http11_connection import Connection, Failure
from hookhub.outbound.transport import (
    MAX_ERROR_DETAIL,
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
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}
        self._busy: set[Connection] = set()
        self._swept_at = 0.0
        self._closed = False

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> AttemptResult:
        if self._closed:
            raise RuntimeError("Http11Transport is closed")
        started = time.perf_counter()
        connection: Connection | None = None
        try:
            target = _target(url)
            request = self._request(target, body, headers)
            async with asyncio.timeout(timeout):
                connection = await self._connection(target)
                self._busy.add(connection)
                await connection.send(request)
        except _InvalidURL:
            return _result(started, None, "invalid_url", "the URL cannot be requested")
        except Failure as failure:
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
                raise Failure("invalid_request", f"header {name!r} cannot be sent")
            lines.append(f"{name}: {value}\r\n".encode("latin-1", "replace"))
        lines.append(b"Content-Length: %d\r\n\r\n" % len(body))
        lines.append(body)
        return b"".join(lines)

    # -- connections ---------------------------------------------------------------------------

    async def _connection(self, target: _Target) -> Connection:
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

    def _give_back(self, target: _Target, connection: Connection) -> None:
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
                raise Failure("destination_refused", str(DestinationRefused(target.host, reason)))
            family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
            return [(family, str(literal))]
        try:
            resolved: list[ResolveResult] = await self._resolver.resolve(
                target.host, target.port, socket.AF_UNSPEC
            )
        except DestinationRefused as exc:
            raise Failure("destination_refused", str(exc)) from exc
        except OSError as exc:
            cause = exc.strerror or str(exc) or type(exc).__name__
            raise Failure("dns_error", f"cannot resolve {target.host}: {cause}") from exc
        if not resolved:
            raise Failure("dns_error", f"cannot resolve {target.host}: no address")
        return [(socket.AddressFamily(r["family"]), r["host"]) for r in resolved]

    async def _connect(self, target: _Target) -> Connection:
        loop = asyncio.get_running_loop()
        tls = target.scheme == "https"
        context = (self._ssl_context or _default_ssl_context()) if tls else None
        failure: Failure | None = None
        for family, address in await self._addresses(target):
            # Judged again right before dialling: the address connected to is the one checked.
            reason = self._policy.refusal(parse_ip(address))
            if reason is not None:
                failure = Failure("destination_refused", str(DestinationRefused(address, reason)))
                continue
            try:
                _transport, connection = await loop.create_connection(
                    lambda: Connection(loop),
                    host=address,
                    port=target.port,
                    family=family,
                    ssl=context,
                    server_hostname=target.host if tls else None,
                )
                return connection
            except ssl.SSLError as exc:
                failure = Failure(
                    "tls_error", f"TLS handshake with {target.host}:{target.port} failed: {exc}"
                )
            except OSError as exc:
                cause = exc.strerror or type(exc).__name__
                failure = Failure(
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
