"""The transport seam between the delivery worker and the network.

The worker hands one signed body to a :class:`Transport` and gets an :class:`AttemptResult`
back. The real transports are ``hookhub.outbound.http11.Http11Transport`` (the default, a lean
HTTP/1.1 client) and ``hookhub.outbound.sender.AiohttpTransport``; both build on what is here:
the result type, the limits on what a response may make us read, the destination guard for
resolved names (:class:`GuardedResolver`, :class:`DestinationRefused`), the default headers
(:class:`TransportBase`) and the body decoder. :class:`RecordingTransport` is the in-memory one
for delivery-logic tests: it records every post and answers from a script, without a socket.

Nothing here may open a socket or raise for a network problem; errors are results.
"""

from __future__ import annotations

import errno
import inspect
import ipaddress
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from aiohttp.abc import AbstractResolver, ResolveResult

from hookhub.core.urlguard import DestinationPolicy, IPAddress

__all__ = [
    "MAX_ERROR_DETAIL",
    "MAX_HEADER_COUNT",
    "MAX_HEADER_FIELD",
    "MAX_RESPONSE_BODY",
    "MAX_RESPONSE_HEAD",
    "RESET_ERRNOS",
    "AttemptResult",
    "DestinationRefused",
    "GuardedResolver",
    "RecordedPost",
    "RecordingTransport",
    "Responder",
    "Transport",
    "TransportBase",
    "decode_body",
    "failed",
    "network_error",
    "parse_ip",
    "respond",
]

MAX_RESPONSE_BODY = 64 * 1024
"""Bytes of a response body that are read and kept; the rest is never read."""
MAX_HEADER_FIELD = 8 * 1024
"""Bytes of one response header (name and value), as aiohttp allows; past it the attempt fails."""
MAX_HEADER_COUNT = 100
"""Header fields of one response; past it the attempt fails."""
MAX_RESPONSE_HEAD = 64 * 1024
"""Bytes of a response's status line and headers together; past it the attempt fails."""

MAX_ERROR_DETAIL = 500
"""Characters of an error detail that are kept."""
RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one delivery attempt produced."""

    status_code: int | None
    """The receiver's HTTP status; None when no response arrived."""
    duration_ms: float
    error: str | None
    """Error class: "timeout", "connect_error", "dns_error", "tls_error", "destination_refused",
    "connection_reset", "invalid_response", "response_too_large" (headers past the limits
    above), "invalid_url", "invalid_request" (a header that cannot be sent), "network_error".
    A 3xx is a status, not an error."""
    error_detail: str | None
    """A human message; never contains the URL's path or query, headers or secrets."""
    response_body: str | None
    """The start of the response body (at most 64 KiB, undecodable bytes replaced)."""
    retry_after: str | None
    """The raw ``Retry-After`` header, if the receiver sent one."""

    @property
    def ok(self) -> bool:
        """A 2xx received in full within the timeout."""
        return self.status_code is not None and 200 <= self.status_code < 300 and not self.error


class Transport(Protocol):
    """Sends one POST; never raises for network problems."""

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> AttemptResult: ...

    async def close(self) -> None: ...


class DestinationRefused(OSError):
    """Raised inside the connector for an address the destination policy forbids."""

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"refused to connect to {target}: {reason}")
        self.target = target
        self.reason = reason


def parse_ip(host: str) -> IPAddress:
    return ipaddress.ip_address(host.split("%", 1)[0])  # resolvers append %zone to link-local


class GuardedResolver(AbstractResolver):
    """Wraps a resolver and drops the addresses the policy forbids.

    A name with no allowed address at all is refused outright, so the refusal reads as such
    instead of as a DNS failure. Literal IPs never reach a resolver: the socket factory of
    :class:`AiohttpTransport` judges those (and, again, every address really dialled).
    """

    def __init__(self, inner: AbstractResolver, policy: DestinationPolicy) -> None:
        self._inner = inner
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed: list[ResolveResult] = []
        refused: list[str] = []
        for result in results:
            try:
                reason = self._policy.refusal(parse_ip(result["host"]))
            except ValueError:
                reason = "not an IP address"
            if reason is None:
                allowed.append(result)
            else:
                refused.append(f"{result['host']} ({reason})")
        if not allowed and refused:
            raise DestinationRefused(host, "resolves to " + ", ".join(refused[:4]))
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class TransportBase:
    """What the real transports share: default headers, and ``async with`` closing them."""

    def __init__(self, *, user_agent: str) -> None:
        # Sent with every request unless the caller sets them (the delivery worker sets both).
        self._default_headers = {"user-agent": user_agent, "accept-encoding": "identity"}

    def _with_defaults(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        """``headers`` with this transport's defaults under any the caller did not set."""
        if "user-agent" in headers:
            return headers  # the delivery worker's, complete (its per-endpoint base headers)
        return {**self._default_headers, **headers}

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def decode_body(raw: bytes, charset: Callable[[], str | None]) -> str:
    """A response body as text; ``charset`` (of the response) is looked up only if needed."""
    if raw.isascii():  # most answers are short ASCII ("ok", "{}")
        return raw.decode("ascii")
    return _decode(raw, charset())


def _decode(raw: bytes, charset: str | None) -> str:
    if charset:
        try:
            return raw.decode(charset, errors="replace")
        except LookupError:  # unknown, or not a text encoding at all (e.g. "rot13")
            pass
    return raw.decode("utf-8", errors="replace")


# -- in memory, for tests --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedPost:
    url: str
    body: bytes
    headers: Mapping[str, str]
    timeout: float


Responder = Callable[[RecordedPost], AttemptResult | Awaitable[AttemptResult]]


def respond(
    status: int = 200,
    body: str = "",
    *,
    retry_after: str | None = None,
    duration_ms: float = 1.0,
) -> AttemptResult:
    """A response that arrived: any status, 2xx or not."""
    return AttemptResult(
        status_code=status,
        duration_ms=duration_ms,
        error=None,
        error_detail=None,
        response_body=body,
        retry_after=retry_after,
    )


def failed(status: int, body: str = "", *, retry_after: str | None = None) -> AttemptResult:
    """A non-2xx response (``respond`` under a name that reads well in scripts)."""
    return respond(status, body, retry_after=retry_after)


def network_error(
    error: str = "connect_error", detail: str = "cannot connect", *, duration_ms: float = 1.0
) -> AttemptResult:
    """No response: ``error`` is the error class ("timeout", "destination_refused", ...)."""
    return AttemptResult(
        status_code=None,
        duration_ms=duration_ms,
        error=error,
        error_detail=detail,
        response_body=None,
        retry_after=None,
    )


class RecordingTransport:
    """Records posts in ``posts``; answers with the script, then with ``default`` (a 200)."""

    def __init__(
        self,
        script: Iterable[AttemptResult] | Responder | None = None,
        *,
        default: AttemptResult | None = None,
    ) -> None:
        self.posts: list[RecordedPost] = []
        self.closed = False
        self._responder: Responder | None = None
        self._queue: deque[AttemptResult] = deque()
        if callable(script):
            self._responder = script
        elif script is not None:
            self._queue.extend(script)
        self._default = default if default is not None else respond(200)

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> AttemptResult:
        if self.closed:
            raise RuntimeError("RecordingTransport is closed")
        recorded = RecordedPost(url=url, body=bytes(body), headers=dict(headers), timeout=timeout)
        self.posts.append(recorded)
        if self._responder is not None:
            answer = self._responder(recorded)
            if inspect.isawaitable(answer):
                return await answer
            return answer
        if self._queue:
            return self._queue.popleft()
        return self._default

    def posts_to(self, url: str) -> list[RecordedPost]:
        return [post for post in self.posts if post.url == url]

    async def close(self) -> None:
        self.closed = True
