"""The receive path, ``POST /in/{token}``: below the web framework, because providers time out.

Order of work, cheapest refusal first: find the webhook (cached) -> rate limit -> body size
(413 past the limit; the HTTP layer stops reading there) -> verify the signature over the raw
bytes -> parse -> dedupe key and event type -> log durably -> answer. The log is written in
group commits (:class:`RequestJournal`): every request waiting when a commit starts goes into
it, and each is answered only after its commit. Rules run later, from the log.

:meth:`InboundReceiver.receive` is the whole path as plain calls and one callback, no task per
request: ``hookhub serve`` calls it straight from its HTTP protocol (``hookhub.api.http``). The
receiver is also an ASGI app, for any other server and for the in-process test client.

It must never answer before the request is durable, never parse before verifying, and never let
anything a client sends become a 500.
"""

from __future__ import annotations

import asyncio
import logging
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

Header = tuple[bytes, bytes]
Respond = Callable[[int, bytes, Sequence[Header]], None]
"""How the receiver answers: status, JSON body, headers beyond content type and length."""
Logged = Callable[[BaseException | None], None]


class RequestJournal:
    """Group commit of request-log entries, off the event loop.

    :meth:`add` queues an entry with a callback; every entry queued while a commit runs goes
    into the next one, and each callback hears, after its commit, whether it failed.
    """

    def __init__(self, db: Database, on_commit: Callable[[], None]) -> None:
        self.db = db
        self.on_commit = on_commit
        self._pending: list[tuple[LogEntry, Logged]] = []
        self._flushing = False
        self._task: asyncio.Task[None] | None = None

    def add(self, entry: LogEntry, logged: Logged) -> None:
        """Queue ``entry``; ``logged(None)`` once it is committed, ``logged(error)`` if not."""
        self._pending.append((entry, logged))
        if not self._flushing:
            self._flushing = True
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Commit groups one after the other while entries keep coming.

        One commit at a time (request ids must follow arrival order), but a group is answered
        while the next one is being written: answering 64 requests first and only then
        starting the next commit left PostgreSQL idle meanwhile.
        """
        batch, self._pending = self._pending, []
        writing = self._start(batch)
        try:
            while batch:
                error: BaseException | None = None
                try:
                    await writing
                except Exception as exc:
                    error = exc
                done, batch, self._pending = batch, self._pending, []
                if batch:
                    writing = self._start(batch)
                _tell(done, error)
                if error is None:
                    self.on_commit()
                if not batch and self._pending:  # answering started pipelined requests
                    batch, self._pending = self._pending, []
                    writing = self._start(batch)
        except BaseException:
            # Cancelled at shutdown: nobody may wait for ever. A commit that did land is
            # answered 503 too; the sender's retry then meets the dedupe key.
            _tell([*batch, *self._pending], Unavailable("The server is shutting down."))
            self._pending = []
            raise
        finally:
            self._flushing = False

    def _start(self, batch: list[tuple[LogEntry, Logged]]) -> asyncio.Future[None]:
        """Write ``batch``'s entries in a worker thread; the future is done once committed."""
        entries = [entry for entry, _ in batch]
        return asyncio.get_running_loop().run_in_executor(None, self._write, entries)

    def _write(self, entries: list[LogEntry]) -> None:
        with self.db.write() as conn:
            InboundRequestStore(conn).append(entries)


def _tell(batch: list[tuple[LogEntry, Logged]], error: BaseException | None) -> None:
    for _, logged in batch:
        try:
            logged(error)
        except Exception:  # one answer's failure must not keep the others waiting
            log.exception("inbound.answer_failed")


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
    """``POST /in/{token}``: :meth:`receive` for the HTTP protocol's own fast lane
    (``hookhub.api.http``), and an ASGI app (``__call__``) for every other way in."""

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
        self.on_received = on_received
        self.clock = clock
        self.journal = RequestJournal(service.db, self._committed)
        self.limiter = RateLimiter()
        self._tally: dict[tuple[str, str], int] = {}
        self._counters: dict[tuple[str, str], Any] = {}
        self._cache: OrderedDict[str, tuple[float, InboundWebhook | None]] = OrderedDict()
        self._lookups: set[asyncio.Task[None]] = set()
        service.on_change.append(self.forget)

    def forget(self, token: str) -> None:
        self._cache.pop(token, None)

    # -- the receive path --------------------------------------------------------------------

    def receive(
        self, token: str, headers: Sequence[Header], body: bytes | None, respond: Respond
    ) -> None:
        """Receive a POST to ``/in/{token}``; ``body`` is None when it passed ``max_body``.

        ``headers`` are ``(name, value)`` pairs with lower-case names, as received. Calls
        ``respond(status, json_body, extra_headers)`` exactly once: at once for an unknown
        webhook, otherwise after the request's log entry is committed. Never raises. Runs on
        the event loop, which must be running.
        """
        cached = self._cache.get(token)
        if cached is not None and cached[0] > time.monotonic():
            self._receive(cached[1], headers, body, respond)
            return
        task = asyncio.get_running_loop().create_task(
            self._look_up_and_receive(token, headers, body, respond)
        )
        self._lookups.add(task)
        task.add_done_callback(self._lookups.discard)

    async def _look_up_and_receive(
        self, token: str, headers: Sequence[Header], body: bytes | None, respond: Respond
    ) -> None:
        try:
            webhook = await self._webhook(token)
        except Exception as exc:
            respond(*failure_answer(exc))
            return
        self._receive(webhook, headers, body, respond)

    async def _webhook(self, token: str) -> InboundWebhook | None:
        webhook = None
        if 16 <= len(token) <= 64:
            webhook = await asyncio.to_thread(self.service.by_token, token)
        self._cache[token] = (time.monotonic() + CACHE_SECONDS, webhook)
        self._cache.move_to_end(token)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return webhook

    def _receive(
        self,
        webhook: InboundWebhook | None,
        headers: Sequence[Header],
        body: bytes | None,
        respond: Respond,
    ) -> None:
        if webhook is None or not webhook.enabled:
            respond(404, _NOT_FOUND, ())
            return
        try:
            entry, refusal = self._judge(webhook, headers, body)
        except Exception as exc:
            respond(*failure_answer(exc))
            return

        def logged(error: BaseException | None) -> None:
            if error is not None:
                respond(*failure_answer(error))
            elif entry.status == "gone":  # deleted while this request was on its way
                self.forget(webhook.token)
                respond(404, _NOT_FOUND, ())
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

    def _judge(
        self, webhook: InboundWebhook, headers: Sequence[Header], body: bytes | None
    ) -> tuple[LogEntry, tuple[HookhubError, Sequence[Header]] | None]:
        """The log entry for this request and, when it is refused, the error to answer.

        Cheapest refusal first: rate limit, body size, then the signature over the raw bytes,
        then parsing. Every refusal is logged too.
        """
        now = self.clock()
        raw_headers = tuple(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in headers[:MAX_HEADERS_KEPT]
        )
        entry = LogEntry(
            webhook_id=webhook.id,
            received_at=now,
            status="rejected",
            http_status=0,
            headers=_headers_json(raw_headers),
            body=None,
        )
        error: HookhubError | None = None
        extra: Sequence[Header] = ()
        rate = webhook.rate_limit or self.default_rate_limit
        # Capped: a rate stored before the API's minimum existed could ask for an infinite wait.
        wait = min(self.limiter.wait_time(webhook.id, rate, now), 86_400.0) if rate else 0.0
        if wait > 0:
            error = RateLimited(retry_after=wait)
            extra = ((b"retry-after", str(max(1, round(wait + 0.5))).encode()),)
        elif body is None:
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
                payload = provider.parse(request)
                entry.dedupe_key = provider.dedupe_key(request, payload, webhook.options)
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
            return entry, (error, extra)
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
            loop = asyncio.get_running_loop()
            answered: asyncio.Future[tuple[int, bytes, Sequence[Header]]] = loop.create_future()

            def respond(status: int, content: bytes, headers: Sequence[Header]) -> None:
                if not answered.done():
                    answered.set_result((status, content, headers))

            token = scope["path"][len(PREFIX) :]
            self.receive(
                token, scope["headers"], await _read_body(scope, receive, self.max_body), respond
            )
            answer = await answered
        status, content, extra = answer
        # A Content-Length spares the chunked framing the server would otherwise add.
        headers = [*_JSON_HEADERS, (b"content-length", b"%d" % len(content)), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


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


def _headers_json(headers: tuple[tuple[str, str], ...]) -> str:
    kept = [[n, "[redacted]" if n in SENSITIVE_HEADERS else v[:4096]] for n, v in headers]
    return jsoncodec.dumps(kept).decode()


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": None}}


_NOT_FOUND = jsoncodec.dumps(_error("not_found", "No inbound webhook at this URL."))
