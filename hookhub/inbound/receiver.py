"""The receive path, ``POST /in/{token}``: below the web framework, because providers time out.

Order of work, cheapest refusal first: find the webhook (cached; as soon as the headers are
in, before any of the body is read: an unknown token is answered 404 at once) -> body size
(413 past the limit; the HTTP layer stops reading there) -> verify the signature over the raw
bytes -> rate limit (spent only by verified requests, so a flood of forged ones cannot use up a
sender's budget) -> parse -> dedupe keys and event type -> log durably -> answer. The log is
written in group commits (:class:`~hookhub.inbound.journal.RequestJournal`): every request
waiting when a commit starts goes into it, and each is answered only after its commit. Rules
run later, from the log. Refused requests are logged with a prefix of their body only, and at
most ``refusals_logged_per_minute`` a webhook; rate-limited ones, and refusals past that number,
are counted, not logged.

:meth:`InboundReceiver.find` then :meth:`InboundReceiver.receive_for` is the whole path as plain
calls and callbacks, no task per request: ``hookhub serve`` calls them straight from its HTTP
protocol (``hookhub.api.http``). The receiver is also an ASGI app, for any other server and for
the in-process test client.

It must never answer before the request is durable, never parse before verifying, and never let
anything a client sends become a 500.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.types import Receive, Scope, Send

from hookhub.core import jsoncodec
from hookhub.errors import (
    HookhubError,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    SignatureInvalid,
    Unavailable,
)
from hookhub.inbound.journal import RequestJournal
from hookhub.inbound.providers import get_provider
from hookhub.inbound.providers.base import RawRequest
from hookhub.inbound.service import InboundService, InboundWebhook
from hookhub.logs import SENSITIVE_HEADERS
from hookhub.metrics import Metrics
from hookhub.store.inbound import LogEntry

log = logging.getLogger("hookhub.inbound")
PREFIX = "/in/"
CACHE_SECONDS = 5.0
CACHE_SIZE = 10_000
MAX_HEADERS_KEPT = 100
_JSON_HEADERS = [(b"content-type", b"application/json")]

TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,64}")
"""What a receive URL's token looks like; anything else is not looked up."""
MAX_REJECTED_HEADERS = 32
MAX_REJECTED_HEADER_VALUE = 256

Header = tuple[bytes, bytes]
Respond = Callable[[int, bytes, Sequence[Header]], None]
"""How the receiver answers: status, JSON body, headers beyond content type and length."""
Found = Callable[[InboundWebhook | None, BaseException | None], None]
"""What :meth:`InboundReceiver.find` calls: the webhook (None if unknown), or the failure."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Token bucket per webhook (per process): ``rate`` requests/s, ``burst_seconds``' worth."""

    def __init__(self, burst_seconds: float = 2.0) -> None:
        self.burst_seconds = burst_seconds
        self._buckets: dict[int, _Bucket] = {}

    def wait_time(self, webhook_id: int, rate: float, now: float) -> float:
        burst = max(rate * self.burst_seconds, 1.0)
        bucket = self._buckets.get(webhook_id)
        if bucket is None:
            bucket = self._buckets[webhook_id] = _Bucket(burst, now)
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / rate


class InboundReceiver:
    """``POST /in/{token}``: :meth:`receive` for the HTTP protocol's own fast lane
    (``hookhub.api.http``), and an ASGI app (``__call__``) for every other way in."""

    def __init__(
        self,
        service: InboundService,
        *,
        max_body: int,
        default_rate_limit: float | None,
        body_timeout: float = 30.0,
        rejected_body_prefix: int = 4096,
        refusals_logged_per_minute: int = 60,
        metrics: Metrics | None = None,
        on_received: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.max_body = max_body
        self.default_rate_limit = default_rate_limit
        self.body_timeout = body_timeout
        self.rejected_body_prefix = rejected_body_prefix
        self.refusals_logged_per_minute = refusals_logged_per_minute
        self.refusals_logged = RateLimiter(burst_seconds=60)
        self.metrics = metrics
        self.on_received = on_received
        self.clock = clock
        self.journal = RequestJournal(service.db, self._committed)
        self.limiter = RateLimiter()
        self._tally: dict[tuple[str, str], int] = {}
        self._counters: dict[tuple[str, str], Any] = {}
        self._cache: OrderedDict[str, tuple[float, InboundWebhook | None]] = OrderedDict()
        # Entries expiring no later than this were looked up before the last forget_all().
        self._expired_before = 0.0
        self._lookups: set[asyncio.Task[None]] = set()
        service.on_change.append(self.forget)

    def forget(self, token: str) -> None:
        self._cache.pop(token, None)

    def forget_all(self) -> None:
        """Drop every cached webhook: some changed, maybe in another process. Thread-safe."""
        self._expired_before = time.monotonic() + CACHE_SECONDS

    # -- the receive path --------------------------------------------------------------------

    def receive(
        self, token: str, headers: Sequence[Header], body: bytes | None, respond: Respond
    ) -> None:
        """Receive a POST to ``/in/{token}`` whose body has been read; ``body`` is None when it
        passed ``max_body``. :meth:`find` then :meth:`receive_for`, for callers that have the
        whole request at once."""

        def found(webhook: InboundWebhook | None, error: BaseException | None) -> None:
            if error is not None:
                respond(*failure_answer(error))
            else:
                self.receive_for(webhook, headers, body, respond)

        self.find(token, found)

    def find(self, token: str, found: Found) -> None:
        """Look the webhook of ``token`` up: ``found(webhook, None)`` (None when there is no
        such webhook, or the token is malformed), or ``found(None, error)`` when the lookup
        failed. At once when cached, otherwise from a task. Runs on the event loop."""
        cached = self._cache.get(token)  # only well-formed tokens are ever cached
        if cached is not None and cached[0] > time.monotonic() and cached[0] > self._expired_before:
            found(cached[1], None)
            return
        if not TOKEN_SHAPE.fullmatch(token):
            found(None, None)
            return
        task = asyncio.get_running_loop().create_task(self._look_up(token, found))
        self._lookups.add(task)
        task.add_done_callback(self._lookups.discard)

    async def _look_up(self, token: str, found: Found) -> None:
        try:
            webhook = await self._webhook(token)
        except Exception as exc:
            found(None, exc)
            return
        found(webhook, None)

    async def _webhook(self, token: str) -> InboundWebhook | None:
        looked_up = time.monotonic()  # before reading: a change meanwhile makes the entry stale
        webhook = await asyncio.to_thread(self.service.by_token, token)
        self._cache[token] = (looked_up + CACHE_SECONDS, webhook)
        self._cache.move_to_end(token)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return webhook

    def receive_for(
        self,
        webhook: InboundWebhook | None,
        headers: Sequence[Header],
        body: bytes | None,
        respond: Respond,
    ) -> None:
        """Receive a request for ``webhook`` (as :meth:`find` answered it).

        ``headers`` are ``(name, value)`` pairs with lower-case names, as received; ``body`` is
        None when it passed ``max_body``. Calls ``respond(status, json_body, extra_headers)``
        exactly once: at once for an unknown webhook or a rate-limited request, otherwise
        after the request's log entry is committed. Never raises. Runs on the event loop.
        """
        if webhook is None or not webhook.enabled:
            respond(404, NOT_FOUND, ())
            return
        try:
            entry, refusal = self._judge(webhook, headers, body)
        except Exception as exc:
            respond(*failure_answer(exc))
            return
        if refusal is not None:
            # Counted, not logged: a flood of them must not fill the disk.
            if isinstance(refusal[0], RateLimited):
                reason, status = "rate_limited", "rate_limited"
            elif not self._log_refusal(webhook.id, entry.received_at):
                reason, status = "refused", "rejected"
            else:
                reason = ""
            if reason:
                self.journal.count_unlogged(webhook.id, reason)
                self._count(webhook, status)
                error_body = {"error": refusal[0].to_dict()}
                respond(refusal[0].status, jsoncodec.dumps(error_body), refusal[1])
                return

        def logged(error: BaseException | None) -> None:
            if error is not None:
                respond(*failure_answer(error))
            elif entry.status == "gone":  # deleted while this request was on its way
                self.forget(webhook.token)
                respond(404, NOT_FOUND, ())
            elif refusal is not None:
                self._count(webhook, "rejected")
                error_body = {"error": refusal[0].to_dict(), "request_id": entry.id}
                respond(refusal[0].status, jsoncodec.dumps(error_body), refusal[1])
            elif entry.status == "duplicate":
                self._count(webhook, "duplicate")
                respond(200, b'{"request_id":%d,"status":"duplicate"}' % entry.id, ())
            else:
                self._count(webhook, entry.status)
                respond(202, b'{"request_id":%d,"status":"queued"}' % entry.id, ())

        self.journal.add(entry, logged)

    def _log_refusal(self, webhook_id: int, now: float) -> bool:
        """Whether this refusal is logged: at most ``refusals_logged_per_minute`` a webhook."""
        per_minute = self.refusals_logged_per_minute
        if per_minute <= 0:
            return False
        return self.refusals_logged.wait_time(webhook_id, per_minute / 60, now) == 0

    def _judge(
        self, webhook: InboundWebhook, headers: Sequence[Header], body: bytes | None
    ) -> tuple[LogEntry, tuple[HookhubError, Sequence[Header]] | None]:
        """The log entry for this request and, when it is refused, the error to answer.

        Body size, then the signature over the raw bytes, then the rate limit (verified
        requests only spend it), then parsing. Every refusal but the rate limit's is logged,
        with at most a prefix of its body and a few short headers.
        """
        now = self.clock()
        if len(headers) > MAX_HEADERS_KEPT:
            headers = headers[:MAX_HEADERS_KEPT]
        raw_headers = tuple(
            [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]
        )
        entry = LogEntry(
            webhook_id=webhook.id,
            received_at=now,
            status="rejected",
            http_status=0,
            headers="",
            body=None,
        )
        error: HookhubError | None = None
        if body is None:
            error = PayloadTooLarge(
                f"The body is larger than {self.max_body} bytes.",
                details={"limit": self.max_body},
            )
        else:
            entry.body = body
            provider = get_provider(webhook.source)
            request = RawRequest.received(raw_headers, body)
            try:
                provider.verify(request, webhook.secret or "", now, webhook.options)
                rate = webhook.rate_limit or self.default_rate_limit
                # Capped: a rate stored before the API's minimum existed could ask for ever.
                wait = min(self.limiter.wait_time(webhook.id, rate, now), 86_400.0) if rate else 0.0
                if wait > 0:
                    retry_after = str(max(1, round(wait + 0.5))).encode()
                    return entry, (RateLimited(retry_after=wait), ((b"retry-after", retry_after),))
                payload = provider.parse(request)
                entry.dedupe_key = provider.dedupe_key(request, payload, webhook.options)
                if provider.dedupes_body(webhook.options):
                    entry.body_key = provider.body_key(request, payload)
                event_type = provider.event_type(request, payload, webhook.options)
                entry.event_type = _column_text(event_type)
            except HookhubError as exc:
                error = exc
                if exc.status >= 500 or exc.status == 422:  # a misconfigured webhook
                    error = SignatureInvalid(
                        "The webhook's secret or options cannot verify requests."
                    )
        if error is not None:
            entry.http_status = error.status
            entry.error = error.message.replace("\x00", "\ufffd")
            if entry.body is not None:
                entry.body = entry.body[: self.rejected_body_prefix]
            kept = raw_headers[:MAX_REJECTED_HEADERS]
            entry.headers = _headers_json(kept, MAX_REJECTED_HEADER_VALUE)
            return entry, (error, ())
        entry.headers = _headers_json(raw_headers)
        entry.status, entry.http_status = "received", 202
        return entry, None

    def _count(self, webhook: InboundWebhook, status: str) -> None:
        key = (webhook.source, status)
        self._tally[key] = self._tally.get(key, 0) + 1

    def _committed(self) -> None:
        """After each group commit: the metrics move by the batch, then processing wakes."""
        if self.metrics is not None and self._tally:
            for key, count in self._tally.items():
                counter = self._counters.get(key)
                if counter is None:  # labels() is a locked lookup: once per pair
                    counter = self._counters[key] = self.metrics.inbound_requests.labels(*key)
                counter.inc(count)
        self._tally.clear()
        self.on_received()

    # -- the same as an ASGI app -------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            error_body = _error("method_not_allowed", "Send webhooks with POST.")
            answer: tuple[int, bytes, Sequence[Header]] = (
                405,
                jsoncodec.dumps(error_body),
                ((b"allow", b"POST"),),
            )
        else:
            answer = await self._answer(scope, receive)
        status, content, extra = answer
        # A Content-Length spares the chunked framing the server would otherwise add.
        headers = [*_JSON_HEADERS, (b"content-length", b"%d" % len(content)), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def _answer(self, scope: Scope, receive: Receive) -> tuple[int, bytes, Sequence[Header]]:
        """The webhook looked up first, then its body read (in time), then received."""
        loop = asyncio.get_running_loop()
        looked_up: asyncio.Future[tuple[InboundWebhook | None, BaseException | None]]
        looked_up = loop.create_future()
        self.find(scope["path"][len(PREFIX) :], lambda *result: looked_up.set_result(result))
        webhook, error = await looked_up
        if error is not None:
            return failure_answer(error)
        if webhook is None or not webhook.enabled:
            return 404, NOT_FOUND, ()
        try:
            async with asyncio.timeout(self.body_timeout):
                body = await _read_body(scope, receive, self.max_body)
        except TimeoutError:
            return timeout_answer(self.body_timeout)
        answered: asyncio.Future[tuple[int, bytes, Sequence[Header]]] = loop.create_future()

        def respond(status: int, content: bytes, headers: Sequence[Header]) -> None:
            if not answered.done():
                answered.set_result((status, content, headers))

        self.receive_for(webhook, scope["headers"], body, respond)
        return await answered


def timeout_answer(seconds: float) -> tuple[int, bytes, Sequence[Header]]:
    """The answer to a body that did not arrive within ``seconds`` of its headers."""
    error = RequestTimeout(
        f"The body did not arrive within {seconds:g} s.", details={"timeout": seconds}
    )
    return 408, jsoncodec.dumps({"error": error.to_dict()}), ()


def failure_answer(exc: BaseException) -> tuple[int, bytes, Sequence[Header]]:
    """The answer when the request could not be judged or logged."""
    if isinstance(exc, SQLAlchemyError | Unavailable):
        # Not durable, so not acknowledged: the provider will retry, which is what we want.
        log.warning("inbound.log_unavailable", extra={"error": type(exc).__name__})
        error = Unavailable("The request could not be stored; retry shortly.")
        return 503, jsoncodec.dumps({"error": error.to_dict()}), ((b"retry-after", b"5"),)
    log.error("inbound.unexpected_error", exc_info=exc)
    return 500, jsoncodec.dumps({"error": HookhubError().to_dict()}), ()


def declared_length(headers: Sequence[Header]) -> int:
    """The request's Content-Length, 0 when it has none or an unreadable one."""
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed ``limit`` (nothing more is read)."""
    if declared_length(scope["headers"]) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _column_text(value: str | None, limit: int = 255) -> str | None:
    """Sender-chosen text as a ``String(limit)`` column takes it on both databases.

    PostgreSQL refuses NUL characters and overlong values, and one refused entry would fail
    the whole group commit it is part of: every request in it would get a 500.
    """
    if value is None:
        return None
    return value.replace("\x00", "\ufffd")[:limit]


def _headers_json(headers: tuple[tuple[str, str], ...], value_limit: int = 4096) -> str:
    kept = [[n, "[redacted]" if n in SENSITIVE_HEADERS else v[:value_limit]] for n, v in headers]
    return jsoncodec.dumps(kept).decode()


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": None}}


NOT_FOUND = jsoncodec.dumps(_error("not_found", "No inbound webhook at this URL."))
