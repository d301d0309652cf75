"""``POST /api/v1/contacts`` below the framework, its writes committed in groups.

Profiling ``hookhub serve`` under load (py-spy, bench/RESULTS.md) showed a create spending most
of its time around the write rather than in it: FastAPI's middleware stack, dependency solving
and a worker-thread hop per request, then a transaction of its own per request (pool checkout,
``BEGIN IMMEDIATE``, five statements, ``COMMIT``), with dozens of threads queued on SQLite's
write lock. Here the common request (a JSON body with a Content-Length within the limit, a
cached key allowed to write, a body the schema accepts) is read, checked and validated on the
event loop; the creates that arrive while a group is being written go together into the next
one: one transaction, in one thread, by :func:`hookhub.crm.create_many.create_many`. Each is
answered only after that transaction has committed (durable when answered, as before), with
what ``create_contact`` would have answered alone.

Anything else (no or an oversized Content-Length, another content type, a key not in the cache
or refused, a query or body the schema refuses) is handed, body and all, to the FastAPI route,
which answers exactly as it always has; it stays the one the API document describes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

import orjson
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hookhub.api.responses import error_response
from hookhub.api.schemas import ContactCreate
from hookhub.crm.create_many import CreateRequest, Outcome, create_many
from hookhub.crm.service import CrmService
from hookhub.errors import Conflict, HookhubError, Unavailable
from hookhub.keys import ApiKeys
from hookhub.keys import Scope as KeyScope
from hookhub.metrics import Metrics

log = logging.getLogger("hookhub.api")

PATH = "/api/v1/contacts"
MAX_GROUP = 256
"""Creates per transaction at most (a group waits for the one before it to commit)."""
_JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS
_BOOL = TypeAdapter(bool)


class ContactGroups:
    """Queues creates and writes them in groups, one transaction at a time, off the loop.

    Every create queued while a group is being written goes into the next group (at most
    :data:`MAX_GROUP`); a group's creates are answered once it has committed, while the next
    one is already being written.
    """

    def __init__(self, crm: CrmService) -> None:
        self.crm = crm
        self._pending: list[tuple[CreateRequest, asyncio.Future[Outcome]]] = []
        self._running = False
        self._task: asyncio.Task[None] | None = None

    def submit(self, request: CreateRequest) -> asyncio.Future[Outcome]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._pending.append((request, future))
        if not self._running:
            self._running = True
            self._task = loop.create_task(self._run())
        return future

    def _take(self) -> list[tuple[CreateRequest, asyncio.Future[Outcome]]]:
        group, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
        return group

    def _start(
        self, group: list[tuple[CreateRequest, asyncio.Future[Outcome]]]
    ) -> asyncio.Future[list[Outcome]]:
        requests = [request for request, _ in group]
        return asyncio.get_running_loop().run_in_executor(None, create_many, self.crm, requests)

    async def _run(self) -> None:
        group = self._take()
        writing: asyncio.Future[list[Outcome]] | None = self._start(group)
        try:
            while writing is not None:
                try:
                    outcomes: Sequence[Outcome] = await writing
                except Exception as exc:  # the transaction failed: nothing of it was stored
                    outcomes = [exc] * len(group)
                done, group = group, self._take()
                writing = self._start(group) if group else None
                for (_, future), outcome in zip(done, outcomes, strict=True):
                    if not future.done():
                        future.set_result(outcome)
        except BaseException:
            # Cancelled at shutdown: nobody may wait for ever (a group that did commit is
            # answered 503 too; a retry then meets its own email, as after a lost answer).
            gone = Unavailable("The server is shutting down.")
            for _, future in [*group, *self._pending]:
                if not future.done():
                    future.set_result(gone)
            self._pending = []
            raise
        finally:
            self._running = False


class ContactCreateEndpoint:
    """The ASGI app for ``POST /api/v1/contacts``; hands what it does not take to ``api``."""

    def __init__(
        self,
        api: ASGIApp,
        *,
        crm: CrmService,
        keys: ApiKeys,
        metrics: Metrics,
        max_body: int,
    ) -> None:
        self.api = api
        self.keys = keys
        self.groups = ContactGroups(crm)
        self.max_body = max_body
        self._metrics = metrics
        self._counters: dict[int, Any] = {}
        self._latency = metrics.http_latency.labels(PATH)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        length, authorization, json_body = _head(scope)
        if length is None or length > self.max_body or not json_body:
            await self.api(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = message.get("more_body", False)
            if size > length:
                break
        body = b"".join(chunks)
        request = self._parse(scope, body, authorization) if size == length and not more else None
        if request is None:
            await self.api(scope, _replay(body, more, receive), send)
            return
        outcome = await self.groups.submit(request)
        status, payload = _answer(outcome)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-length", str(len(payload)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        counter = self._counters.get(status)
        if counter is None:
            counter = self._counters[status] = self._metrics.http_requests.labels(
                PATH, "POST", str(status)
            )
        counter.inc()
        self._latency.observe(time.perf_counter() - started)

    def _parse(self, scope: Scope, body: bytes, authorization: str | None) -> CreateRequest | None:
        """The request, or None when the FastAPI route must answer it."""
        try:
            found = self.keys.check_key_cached(authorization)
        except HookhubError:
            return None
        if found is None:
            return None
        key_scope, origin = found
        if not key_scope.allows(KeyScope.WRITE):
            return None
        upsert = _upsert(scope.get("query_string", b""))
        if upsert is None:
            return None
        try:
            data = ContactCreate.model_validate_json(body)
        except ValidationError:
            return None
        return CreateRequest(
            email=data.email,
            ext_id=data.ext_id,
            attributes=data.attributes,
            list_ids=data.list_ids,
            unsubscribed=data.unsubscribed,
            upsert=upsert,
            origin=origin,
        )


def _head(scope: Scope) -> tuple[int | None, str | None, bool]:
    """Content-Length (None if absent or unreadable), Authorization, and whether the content
    type is ``application/json`` (parameters allowed)."""
    length: int | None = None
    authorization: str | None = None
    json_body = False
    seen_length = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            if seen_length:  # twice: let the framework decide
                return None, None, False
            seen_length = True
            try:
                length = int(value)
            except ValueError:
                return None, None, False
        elif name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"content-type":
            json_body = value.split(b";", 1)[0].strip().lower() == b"application/json"
    return length, authorization, json_body


def _upsert(query: bytes) -> bool | None:
    """The ``upsert`` flag as FastAPI reads it (the last one given; false if none), or None
    when it is not a boolean (the route answers 422)."""
    if not query:
        return False
    try:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    except ValueError:
        return None
    values = [value for key, value in pairs if key == "upsert"]
    if not values:
        return False
    try:
        return _BOOL.validate_python(values[-1])
    except ValidationError:
        return None


def _replay(body: bytes, more: bool, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replay


def _answer(outcome: Outcome) -> tuple[int, bytes]:
    if isinstance(outcome, BaseException):
        response = error_response(_as_error(outcome))
        return response.status_code, bytes(response.body)
    contact, created = outcome
    # The attributes were checked when they were written (jsoncodec refuses what JSON cannot
    # hold exactly), so the answer is serialized without that walk.
    return (201 if created else 200), orjson.dumps(contact.to_api(), option=_JSON_OPTIONS)


def _as_error(exc: BaseException) -> HookhubError:
    """What the API's error handlers (``hookhub.api.errors``) make of ``exc``."""
    if isinstance(exc, HookhubError):
        if exc.status >= 500:
            log.error("request.failed", extra={"error_code": exc.code})
            if type(exc) is HookhubError:
                return HookhubError()
        return exc
    if isinstance(exc, IntegrityError):
        log.info("request.integrity_conflict", extra={"error": type(exc.orig).__name__})
        return Conflict("The change conflicts with a concurrent change; retry.")
    if isinstance(exc, OperationalError):
        log.warning("request.database_unavailable", extra={"error": type(exc.orig).__name__})
        return Unavailable()
    if isinstance(exc, DBAPIError):
        log.error("request.database_error", extra={"route": PATH, "error": type(exc.orig).__name__})
        return HookhubError()
    log.error("request.unexpected_error", exc_info=exc, extra={"method": "POST", "route": PATH})
    return HookhubError()
