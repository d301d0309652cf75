"""An in-memory ``Transport`` for delivery-logic tests: records every POST, answers from a script.

The script is a list of results used in order, or a function of the recorded post (sync or
async, so it can sleep to play a slow endpoint). It must never open a socket; the real ones
are ``Http11Transport`` (the default) and ``AiohttpTransport``, tested over loopback.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from hookhub.outbound.sender import AttemptResult

__all__ = ["RecordedPost", "RecordingTransport", "Responder", "failed", "network_error", "respond"]


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
