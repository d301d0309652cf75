"""The receive path, ``POST /in/{token}``: a bare ASGI app, because providers time out.

Order of work, cheapest refusal first: find the webhook (cached) -> rate limit -> read the body
up to the limit (413 past it, without reading further) -> verify the signature over the raw
bytes -> parse -> dedupe key and event type -> log durably -> answer. The log is written in
group commits (:class:`RequestJournal`): every request waiting when a commit starts goes into
it, and each is answered only after its commit. Rules run later, from the log.

It must never answer before the request is durable, never parse before verifying, and never let
anything a client sends become a 500.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.types import Receive, Scope, Send

from hookhub.core import jsoncodec
from hookhub.errors import (
    HookhubError,
    PayloadTooLarge,
    RateLimited,
    SignatureInvalid,
    Unavailable,
)
from hookhub.inbound.providers import get_provider
from hookhub.inbound.providers.base import RawRequest
from hookhub.inbound.service import InboundService, InboundWebhook
from hookhub.logs import SENSITIVE_HEADERS
from hookhub.metrics import Metrics
from hookhub.store.database import Database
from hookhub.store.inbound import InboundRequestStore, LogEntry

log = logging.getLogger("hookhub.inbound")
PREFIX = "/in/"
CACHE_SECONDS = 5.0
CACHE_SIZE = 10_000
MAX_HEADERS_KEPT = 100
_JSON_HEADERS = [(b"content-type", b"application/json")]


class RequestJournal:
    """Group commit of request-log entries, off the event loop."""

    def __init__(self, db: Database, on_commit: Callable[[], None]) -> None:
        self.db = db
        self.on_commit = on_commit
        self._pending: list[tuple[LogEntry, asyncio.Future[None]]] = []
        self._flushing = False
        self._task: asyncio.Task[None] | None = None

    async def append(self, entry: LogEntry) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((entry, future))
        if not self._flushing:
            self._flushing = True
            self._task = loop.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                entries = [entry for entry, _ in batch]
                try:
                    await asyncio.to_thread(self._write, entries)
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)
                self.on_commit()
        finally:
            self._flushing = False

    def _write(self, entries: list[LogEntry]) -> None:
        with self.db.write() as conn:
            InboundRequestStore(conn).append(entries)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Token bucket per webhook (per process): ``rate`` requests/s, bursts of 2 seconds' worth."""

    def __init__(self) -> None:
        self._buckets: dict[int, _Bucket] = {}

    def wait_time(self, webhook_id: int, rate: float, now: float) -> float:
        burst = max(rate * 2, 1.0)
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
    def __init__(
        self,
        service: InboundService,
        *,
        max_body: int,
        default_rate_limit: float | None,
        metrics: Metrics | None = None,
        on_received: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.max_body = max_body
        self.default_rate_limit = default_rate_limit
        self.metrics = metrics
        self.clock = clock
        self.journal = RequestJournal(service.db, on_received)
        self.limiter = RateLimiter()
        self._counters: dict[tuple[str, str], Any] = {}
        self._cache: OrderedDict[str, tuple[float, InboundWebhook | None]] = OrderedDict()
        service.on_change.append(self.forget)

    def forget(self, token: str) -> None:
        self._cache.pop(token, None)

    async def _webhook(self, token: str) -> InboundWebhook | None:
        now = time.monotonic()
        cached = self._cache.get(token)
        if cached is not None and cached[0] > now:
            return cached[1]
        webhook = None
        if 16 <= len(token) <= 64:
            webhook = await asyncio.to_thread(self.service.by_token, token)
        self._cache[token] = (now + CACHE_SECONDS, webhook)
        self._cache.move_to_end(token)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return webhook

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            status, body, headers = await self._handle(scope, receive)
        except (SQLAlchemyError, Unavailable) as exc:
            # Not durable, so not acknowledged: the provider will retry, which is what we want.
            log.warning("inbound.log_unavailable", extra={"error": type(exc).__name__})
            error = Unavailable("The request could not be stored; retry shortly.")
            status, body, headers = 503, {"error": error.to_dict()}, [(b"retry-after", b"5")]
        except Exception:
            log.exception("inbound.unexpected_error")
            status, body, headers = 500, {"error": HookhubError().to_dict()}, []
        content = jsoncodec.dumps(body)
        # A Content-Length spares the chunked framing the server would otherwise add.
        headers = [*_JSON_HEADERS, (b"content-length", str(len(content)).encode()), *headers]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def _handle(
        self, scope: Scope, receive: Receive
    ) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
        if scope["method"] != "POST":
            return (
                405,
                _error("method_not_allowed", "Send webhooks with POST."),
                [(b"allow", b"POST")],
            )
        token = scope["path"][len(PREFIX) :]
        webhook = await self._webhook(token)
        if webhook is None or not webhook.enabled:
            return 404, _error("not_found", "No inbound webhook at this URL."), []
        now = self.clock()
        # ASGI servers give header names in lower case.
        raw_headers = tuple(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in scope["headers"][:MAX_HEADERS_KEPT]
        )
        entry = LogEntry(
            webhook_id=webhook.id,
            received_at=now,
            status="rejected",
            http_status=0,
            headers=_headers_json(raw_headers),
            body=None,
        )
        rate = webhook.rate_limit or self.default_rate_limit
        if rate:
            wait = self.limiter.wait_time(webhook.id, rate, now)
            if wait > 0:
                error: HookhubError = RateLimited(retry_after=wait)
                return await self._refuse(
                    entry,
                    webhook,
                    error,
                    headers=[(b"retry-after", str(max(1, round(wait + 0.5))).encode())],
                )
        body = await _read_body(scope, receive, self.max_body)
        if body is None:
            return await self._refuse(
                entry,
                webhook,
                PayloadTooLarge(
                    f"The body is larger than {self.max_body} bytes.",
                    details={"limit": self.max_body},
                ),
            )
        entry.body = body
        provider = get_provider(webhook.source)
        request = RawRequest.received(raw_headers, body)
        try:
            provider.verify(request, webhook.secret or "", now, webhook.options)
            payload = provider.parse(request)
            entry.dedupe_key = provider.dedupe_key(request, payload, webhook.options)
            entry.event_type = _column_text(provider.event_type(request, payload, webhook.options))
        except HookhubError as exc:
            if exc.status >= 500 or exc.status == 422:  # a misconfigured webhook, not the sender
                exc = SignatureInvalid("The webhook's secret or options cannot verify requests.")
            return await self._refuse(entry, webhook, exc)
        entry.status, entry.http_status = "received", 202
        await self.journal.append(entry)
        if entry.status == "gone":
            return self._gone(webhook)
        self._count(webhook, entry.status)
        if entry.status == "duplicate":
            return 200, {"request_id": entry.id, "status": "duplicate"}, []
        return 202, {"request_id": entry.id, "status": "queued"}, []

    async def _refuse(
        self,
        entry: LogEntry,
        webhook: InboundWebhook,
        error: HookhubError,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
        """Log a refused request (every outcome is in the log), then answer the error."""
        entry.http_status = error.status
        entry.error = error.message.replace("\x00", "\ufffd")
        await self.journal.append(entry)
        if entry.status == "gone":
            return self._gone(webhook)
        self._count(webhook, "rejected")
        body: dict[str, Any] = {"error": error.to_dict(), "request_id": entry.id}
        return error.status, body, headers or []

    def _gone(
        self, webhook: InboundWebhook
    ) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
        """The webhook was deleted while this request was on its way (the log said so)."""
        self.forget(webhook.token)
        return 404, _error("not_found", "No inbound webhook at this URL."), []

    def _count(self, webhook: InboundWebhook, status: str) -> None:
        if self.metrics is not None:
            key = (webhook.source, status)
            counter = self._counters.get(key)
            if counter is None:  # labels() is a locked lookup: once per pair, not per request
                counter = self._counters[key] = self.metrics.inbound_requests.labels(*key)
            counter.inc()


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed ``limit`` (nothing more is read)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                if int(value) > limit:
                    return None
            except ValueError:
                pass
            break
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


def _headers_json(headers: tuple[tuple[str, str], ...]) -> str:
    kept = [[n, "[redacted]" if n in SENSITIVE_HEADERS else v[:4096]] for n, v in headers]
    return jsoncodec.dumps(kept).decode()


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": None}}
