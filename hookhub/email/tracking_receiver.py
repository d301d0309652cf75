"""The public tracking routes, ``/t/o|c|u/{token}``: below the web framework, because a
campaign's opens arrive in bursts.

``GET /t/o/{token}`` answers the open pixel, ``GET /t/c/{token}`` a 302 to the link the token
names among those stored with the email, ``GET /t/u/{token}`` the unsubscribe page and
``POST /t/u/{token}`` (RFC 8058 one-click, and the page's form) unsubscribes. A GET of a pixel
or a link, and a POST of an unsubscribe, is a *hit*: it is written to ``tracking_hits`` in a
group commit (:class:`~hookhub.email.tracking_journal.TrackingJournal`) and answered after that
commit; the tracking processor turns hits into email events later. HEAD is answered like GET,
without a body, and records nothing (it is a link checker, not a reader).

Tokens are checked before anything else (``hookhub.core.tracking``): a bad, tampered, truncated
or foreign token is a 404, and so is a link index the email does not have, or an email that is
gone. Emails' addresses and links are kept in a bounded LRU cache: a click needs its link
before it can answer.

:meth:`TrackingReceiver.receive` is the whole path as plain calls and callbacks, no task per
request, for Hookhub's HTTP protocol (``hookhub.api.tracking_http``); the receiver is also an
ASGI app for any other server and the in-process test client. It must never redirect anywhere
but to a stored link, never answer a hit before it is durable, and never let a client make it
answer 500.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from sqlalchemy.exc import SQLAlchemyError
from starlette.types import Receive, Scope, Send

from hookhub.core.tracking import TrackingRef, TrackingSigner
from hookhub.email import tracking_answers as answers
from hookhub.email.tracking_answers import Answer, Header
from hookhub.email.tracking_journal import TrackingJournal
from hookhub.errors import Unavailable
from hookhub.store.database import Database
from hookhub.store.tracking import EmailTarget, TrackingHit, TrackingHitStore

log = logging.getLogger("hookhub.tracking")
PREFIX = "/t/"
CACHE_SIZE = 10_000
"""Emails whose address and links are kept in memory."""
MAX_BODY = 16 * 1024
"""An unsubscribe POST's body (RFC 8058: ``List-Unsubscribe=One-Click``); past it, 413."""
_GET_HEAD = b"GET, HEAD"
_GET_HEAD_POST = b"GET, HEAD, POST"

Respond = Callable[[int, Sequence[Header], bytes], None]
"""How the receiver answers: status, headers (all but content-length), body (dropped for HEAD
by the HTTP layer)."""
Targeted = Callable[[EmailTarget | None, BaseException | None], None]


class TrackingReceiver:
    def __init__(
        self,
        db: Database,
        signer: TrackingSigner,
        *,
        on_received: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self.db = db
        self.signer = signer
        self.on_received = on_received
        self.clock = clock
        self.cache_size = cache_size
        self.journal = TrackingJournal(db, self._committed)
        self._targets: OrderedDict[int, EmailTarget] = OrderedDict()
        self._wanted: dict[int, list[Targeted]] = {}
        self._reading: asyncio.Task[None] | None = None

    # -- the path ------------------------------------------------------------------------------

    def receive(
        self, method: str, path: str, headers: Sequence[Header], ip: str | None, respond: Respond
    ) -> None:
        """Answer ``method`` on ``path`` (without its query); calls ``respond`` exactly once,
        after the hit's commit when there is one. Never raises. Runs on the event loop."""
        try:
            self._receive(method, path, headers, ip, respond)
        except Exception as exc:
            respond(*_failure(exc))

    def _receive(
        self, method: str, path: str, headers: Sequence[Header], ip: str | None, respond: Respond
    ) -> None:
        parts = path.split("/")
        ref = self.signer.parse(parts[2], parts[3]) if len(parts) == 4 else None
        if ref is None:
            respond(*answers.NOT_FOUND)
            return
        kind = ref.kind
        if method not in ("GET", "HEAD") and not (kind == "u" and method == "POST"):
            respond(*answers.method_not_allowed(_GET_HEAD_POST if kind == "u" else _GET_HEAD))
            return
        record = method != "HEAD"
        if kind == "o":
            if record:
                self._record(self._hit(ref, headers, ip), answers.OPENED, respond)
            else:
                respond(*answers.OPENED)
            return

        def decide(target: EmailTarget | None, error: BaseException | None) -> None:
            if error is not None:
                respond(*_failure(error))
            elif target is None:
                respond(*answers.NOT_FOUND)
            elif kind == "c":
                link = target.links[ref.link] if ref.link < len(target.links) else ""
                answer = answers.redirect(link) if link else None
                if answer is None:
                    respond(*answers.NOT_FOUND)
                elif record:
                    self._record(self._hit(ref, headers, ip), answer, respond)
                else:
                    respond(*answer)
            elif method == "POST":
                hit = self._hit(ref, headers, ip)
                self._record(hit, answers.unsubscribed_page(target.to_email), respond)
            else:
                respond(*answers.unsubscribe_page(target.to_email))

        def targeted(target: EmailTarget | None, error: BaseException | None) -> None:
            try:
                decide(target, error)
            except Exception as exc:
                respond(*_failure(exc))

        self.target(ref.email_id, targeted)

    def _hit(self, ref: TrackingRef, headers: Sequence[Header], ip: str | None) -> TrackingHit:
        agent: str | None = None
        for name, value in headers:
            if name == b"user-agent":
                agent = value.decode("latin-1")
                break
        link = ref.link if ref.kind == "c" else None
        return TrackingHit(ref.kind, ref.email_id, link, self.clock(), agent, ip)

    def _record(self, hit: TrackingHit, answer: Answer, respond: Respond) -> None:
        def stored(error: BaseException | None) -> None:
            if error is None:
                respond(*answer)
            else:
                respond(*_failure(error))

        self.journal.add(hit, stored)

    def _committed(self) -> None:
        self.on_received()

    # -- emails' addresses and links ----------------------------------------------------------

    def target(self, email_id: int, targeted: Targeted) -> None:
        """``targeted(target, None)`` (None when there is no such email), or
        ``targeted(None, error)``; at once when cached, else after a read. Emails missed
        while a read runs are read together in the next one (a burst of clicks on a new
        campaign is a burst of misses)."""
        cached = self._targets.get(email_id)
        if cached is not None:
            self._targets.move_to_end(email_id)
            targeted(cached, None)
            return
        self._wanted.setdefault(email_id, []).append(targeted)
        if self._reading is None:
            self._reading = asyncio.get_running_loop().create_task(self._read_wanted())

    async def _read_wanted(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._wanted:
                wanted, self._wanted = self._wanted, {}
                try:
                    found = await loop.run_in_executor(None, self._read_targets, list(wanted))
                except Exception as exc:
                    for waiting in wanted.values():
                        _tell(waiting, None, exc)
                    continue
                # A link list is fixed once the email is rendered; an address never changes.
                self._targets.update(found)
                while len(self._targets) > self.cache_size:
                    self._targets.popitem(last=False)
                for email_id, waiting in wanted.items():
                    _tell(waiting, found.get(email_id), None)
        except BaseException:
            wanted, self._wanted = self._wanted, {}
            for waiting in wanted.values():  # cancelled at shutdown: nobody waits for ever
                _tell(waiting, None, Unavailable("The server is shutting down."))
            raise
        finally:
            self._reading = None

    def _read_targets(self, ids: list[int]) -> dict[int, EmailTarget]:
        with self.db.read() as conn:
            return TrackingHitStore(conn).targets(ids)

    # -- the same as an ASGI app ---------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        answer: Answer | None = None
        if method == "POST" and not await _read_body(receive, MAX_BODY):
            answer = answers.TOO_LARGE
        if answer is None:
            loop = asyncio.get_running_loop()
            answered: asyncio.Future[Answer] = loop.create_future()

            def respond(status: int, headers: Sequence[Header], body: bytes) -> None:
                if not answered.done():
                    answered.set_result((status, headers, body))

            client = scope.get("client")
            ip = str(client[0]) if client else None
            self.receive(method, scope["path"], scope["headers"], ip, respond)
            answer = await answered
        status, headers, body = answer
        listed = [*headers, (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": listed})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


async def _read_body(receive: Receive, limit: int) -> bool:
    """Read and drop the body; False as soon as it passes ``limit``."""
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return True
        size += len(message.get("body", b""))
        if size > limit:
            return False
        if not message.get("more_body", False):
            return True


def _tell(waiting: list[Targeted], target: EmailTarget | None, error: Exception | None) -> None:
    for targeted in waiting:
        try:
            targeted(target, error)
        except Exception:  # one answer's failure must not keep the others waiting
            log.exception("tracking.answer_failed")


def _failure(exc: BaseException) -> Answer:
    """The answer when a hit could not be stored or its email read: retry later."""
    if isinstance(exc, SQLAlchemyError | Unavailable):
        log.warning("tracking.unavailable", extra={"error": type(exc).__name__})
    else:
        log.error("tracking.unexpected_error", exc_info=exc)
    return answers.UNAVAILABLE
