"""The aiohttp sender: one POST of one signed body to one endpoint, through aiohttp's client.

A :class:`~hookhub.outbound.transport.Transport` (``HOOKHUB_DELIVERY_CLIENT=aiohttp``); the
default is ``hookhub.outbound.http11.Http11Transport``, and what both share (results, limits,
the resolver guard) is in ``hookhub.outbound.transport``. Both keep connections alive, bound
their reads and never follow redirects. Here the SSRF guard lives in the connector: the
resolver drops forbidden addresses and the socket factory refuses any forbidden address before
a socket connects. aiohttp caps each response header at 8 KiB itself.

It must never raise for a network problem, never send a byte to a refused address, never read
an unbounded response, and never put URLs, headers or secrets into an error detail.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Mapping
from typing import Protocol

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver

from hookhub.core.urlguard import DestinationPolicy
from hookhub.outbound.transport import (
    MAX_ERROR_DETAIL,
    MAX_RESPONSE_BODY,
    RESET_ERRNOS,
    AttemptResult,
    DestinationRefused,
    GuardedResolver,
    TransportBase,
    decode_body,
    parse_ip,
)

__all__ = ["AiohttpTransport"]


class AiohttpTransport(TransportBase):
    """The real transport: one keep-alive ``aiohttp.ClientSession`` per transport.

    The session is created on first use inside the running loop (asyncio or uvloop), so
    constructing a transport is free and needs no loop. ``resolver`` replaces the system
    resolver (``ThreadedResolver``), e.g. to map test names to loopback addresses; it is
    always wrapped by the destination policy.
    """

    def __init__(
        self,
        *,
        policy: DestinationPolicy,
        limit: int = 1024,
        limit_per_host: int = 0,
        user_agent: str,
        resolver: AbstractResolver | None = None,
    ) -> None:
        super().__init__(user_agent=user_agent)
        self._policy = policy
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None
        self._guarded: GuardedResolver | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _socket_factory(self, addr_info: aiohttp.AddrInfoType) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        host = str(sockaddr[0])
        reason = self._policy.refusal(parse_ip(host))
        if reason is not None:
            raise DestinationRefused(host, reason)
        return socket.socket(family=family, type=type_, proto=proto)

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._closed:
            raise RuntimeError("AiohttpTransport is closed")
        if self._session is None:
            self._guarded = GuardedResolver(self._resolver or ThreadedResolver(), self._policy)
            connector = aiohttp.TCPConnector(
                limit=self._limit,
                limit_per_host=self._limit_per_host,
                resolver=self._guarded,
                socket_factory=self._socket_factory,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),  # endpoints must not share state
                auto_decompress=False,  # a small compressed body must not expand unbounded
                trust_env=False,  # an environment proxy would bypass the destination guard
            )
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("AiohttpTransport is bound to another event loop")
        return self._session

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> AttemptResult:
        session = self._client()
        started = time.perf_counter()
        status: int | None = None
        retry_after: str | None = None
        response_body: str | None = None

        def result(error: str | None = None, detail: str | None = None) -> AttemptResult:
            return AttemptResult(
                status_code=status,
                duration_ms=(time.perf_counter() - started) * 1000,
                error=error,
                error_detail=detail[:MAX_ERROR_DETAIL] if detail else detail,
                response_body=response_body,
                retry_after=retry_after,
            )

        client_timeout = self._timeouts.get(timeout)
        if client_timeout is None:
            client_timeout = self._timeouts[timeout] = aiohttp.ClientTimeout(total=timeout)
        try:
            async with session.post(
                url,
                data=body,
                # Merged here, not kept as session defaults: aiohttp would merge those header
                # by header on every request.
                headers=self._with_defaults(headers),
                allow_redirects=False,
                timeout=client_timeout,
            ) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                length = response.content_length
                if length is not None and length <= MAX_RESPONSE_BODY:
                    raw = await response.read()  # announced and within the bound
                else:
                    raw = await _read_bounded(response.content, MAX_RESPONSE_BODY)
                response_body = decode_body(raw, lambda: response.charset)
        except TimeoutError:
            stage = "reading the response" if status is not None else "waiting for a response"
            return result("timeout", f"no complete response within {timeout:g} s ({stage})")
        except aiohttp.ClientConnectorError as exc:
            refused = _refusal_in(exc)
            if refused is not None:
                return result("destination_refused", str(refused))
            return _connector_failure(exc, result)
        except aiohttp.ServerDisconnectedError:
            return result("connection_reset", "the server closed the connection without a response")
        except aiohttp.ClientOSError as exc:
            if exc.errno in RESET_ERRNOS:
                return result("connection_reset", _os_message(exc))
            return result("network_error", _os_message(exc))
        except aiohttp.ClientPayloadError as exc:
            return result("invalid_response", f"the response body is malformed: {exc}")
        except aiohttp.ClientResponseError as exc:
            return result("invalid_response", f"the response is not valid HTTP: {exc.message}")
        except aiohttp.InvalidURL:
            return result("invalid_url", "the URL cannot be requested")
        except (aiohttp.ClientError, OSError, RuntimeError, ValueError) as exc:
            # uvloop raises RuntimeError for some socket failures; never let one escape.
            return result("network_error", type(exc).__name__)
        return result()

    async def close(self) -> None:
        """Close pooled connections; idempotent."""
        self._closed = True
        session, self._session = self._session, None
        guarded, self._guarded = self._guarded, None
        if session is not None:
            await session.close()
        if guarded is not None:
            await guarded.close()


async def _read_bounded(stream: aiohttp.StreamReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = await stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    # Unread bytes stay unread: the connection is then closed instead of reused.
    return b"".join(chunks)


def _refusal_in(exc: BaseException) -> DestinationRefused | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, DestinationRefused):
            return current
        if isinstance(current, aiohttp.ClientConnectorError) and isinstance(
            current.os_error, DestinationRefused
        ):
            return current.os_error
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _os_message(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _connector_failure(exc: aiohttp.ClientConnectorError, result: _ResultFactory) -> AttemptResult:
    target = f"{exc.host}:{exc.port}"
    cause = _os_message(exc.os_error)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return result("dns_error", f"cannot resolve {exc.host}: {cause}")
    if isinstance(exc, aiohttp.ClientSSLError):
        return result("tls_error", f"TLS handshake with {target} failed: {exc.os_error}")
    return result("connect_error", f"cannot connect to {target}: {cause}")


class _ResultFactory(Protocol):
    def __call__(self, error: str | None = None, detail: str | None = None) -> AttemptResult: ...
