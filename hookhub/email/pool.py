"""SMTP connections kept open and shared (:class:`SmtpPool`), and the seam on them.

A worker's pool holds up to ``connections`` persistent connections, opened when first needed
(so a worker with nothing to send opens none). Each carries one message at a time; a batch is
spread over them by one lane per connection, each lane taking the next message of the batch as
soon as its previous one is answered. A connection is replaced when it breaks, retired
(politely, with QUIT) after ``recycle_after`` messages or when the server says 421, and not
reused after ``max_idle`` seconds of silence. A message whose pooled connection turns out to
have been closed by the server before its content went out is tried once more, at once, on a
fresh connection (the server cannot have taken it).

``rate`` (messages/s, 0 for none) paces the whole pool: a message waits its turn before it is
handed to a connection, with bursts of a tenth of a second's worth. The clock and the sleep are
injectable so a test can check the pacing without timing anything.

When a connection cannot be set up (the server is down, the password is wrong, TLS fails) the
reason is logged once, without the password, and for the next ``setup_backoff`` seconds
no connection is dialled: messages wait for a connection still open, or, with none left, are
deferred with that reason at once. A wrong password is never tried hundreds of times a
second, and one refused connection does not defer the messages healthy ones can carry.

Nothing here raises for the network or the server, and nothing logs a message's content.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from hookhub.config import Settings
from hookhub.email.pacing import Clock, Pacer, Sleep
from hookhub.email.smtp import Attempt, Prepared, SetupRefused, SmtpConnection
from hookhub.email.smtp_open import open_connection
from hookhub.email.smtp_url import SmtpConfig, parse_smtp_url
from hookhub.email.transport import CaptureTransport, Envelope, MailTransport, SendResult

__all__ = ["SmtpPool", "SmtpTransport", "transport_from_settings", "transport_from_url"]

log = logging.getLogger("hookhub.email.smtp")


class SmtpPool:
    """Up to ``connections`` SMTP connections to one server, shared by concurrent sends."""

    def __init__(
        self,
        config: SmtpConfig,
        *,
        connections: int = 8,
        rate: float = 0.0,
        timeout: float = 30.0,
        recycle_after: int = 1000,
        max_idle: float = 60.0,
        setup_backoff: float = 2.0,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if connections < 1:
            raise ValueError("connections must be >= 1")
        self.config = config
        self.size = connections
        self.rate = rate
        self.timeout = timeout
        self.recycle_after = recycle_after
        self.max_idle = max_idle
        self.setup_backoff = setup_backoff
        self._ssl_context = ssl_context
        self._local_hostname = local_hostname
        self._clock = clock
        self._pacer = Pacer(rate, burst=rate / 10, clock=clock, sleep=sleep) if rate > 0 else None
        self._idle: list[SmtpConnection] = []
        self._open = 0
        """Connections open or being opened (idle, in use, or dialling)."""
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._retiring: set[asyncio.Task[None]] = set()
        self._failure: SetupRefused | None = None
        self._failure_until = 0.0
        self._logged: tuple[str, int | None, str] | None = None

    def describe(self) -> str:
        rate = f", at most {self.rate:g} messages/s" if self.rate else ""
        return f"{self.config.describe()}, {self.size} connections{rate}"

    @property
    def open_connections(self) -> int:
        return self._open

    # -- sending -----------------------------------------------------------------------------

    async def send(self, envelope: Envelope) -> SendResult:
        results: list[SendResult | None] = [None]
        await self._lane((envelope,), iter((0,)), results)
        result = results[0]
        assert result is not None
        return result

    async def send_many(self, envelopes: Sequence[Envelope]) -> list[SendResult]:
        """Send a batch over up to ``connections`` lanes; the results in the batch's order."""
        count = len(envelopes)
        results: list[SendResult | None] = [None] * count
        indexes = iter(range(count))
        lanes = min(self.size, count)
        if lanes == 1:
            await self._lane(envelopes, indexes, results)
        elif lanes > 1:
            await asyncio.gather(*(self._lane(envelopes, indexes, results) for _ in range(lanes)))
        assert None not in results
        return results  # type: ignore[return-value]

    async def _lane(
        self,
        envelopes: Sequence[Envelope],
        indexes: Iterator[int],
        results: list[SendResult | None],
    ) -> None:
        """Send the batch's next message, and the next, on one connection held meanwhile.

        While a message's content goes out, the next message's MAIL, RCPT and DATA ride on
        the same write (a pipelining server, no rate to keep): one write, one read and one
        wake-up a message.
        """
        clock = self._clock
        connection: SmtpConnection | None = None
        ahead: _Ahead | None = None
        """The lane's next message; its commands already written on ``connection`` if
        ``ahead.prepared`` is set."""
        busy = False
        try:
            while True:
                if ahead is not None:
                    index, start, prepared = ahead.index, ahead.start, ahead.prepared
                    ahead = None
                else:
                    next_index = next(indexes, None)
                    if next_index is None:
                        return
                    index, start, prepared = next_index, clock(), None
                    if self._pacer is not None:
                        await self._pacer.wait()
                attempt: Attempt
                for _ in range(2):
                    if connection is None:
                        prepared = None
                        try:
                            connection = await self._checkout()
                        except SetupRefused as refused:
                            attempt = _deferred(refused)
                            break
                    reused = connection.messages > 0
                    written = prepared is not None
                    if prepared is None:
                        made = connection.prepare(envelopes[index])
                        if isinstance(made, Attempt):
                            attempt = made
                            break
                        prepared = made
                    busy = True
                    refused_now = await connection.start(prepared, written=written)
                    if refused_now is None:
                        if ahead is None:  # (a retried message may already have one)
                            ahead = self._look_ahead(connection, envelopes, indexes, results)
                        then = ahead.prepared if ahead is not None else None
                        attempt = await connection.transfer(prepared, then)
                    else:
                        attempt = refused_now
                    busy = False
                    if not connection.usable or connection.messages >= self.recycle_after:
                        self._checkin(connection)
                        connection = None
                        if ahead is not None:  # its commands went to a connection now closed
                            ahead.prepared = None
                    if not (attempt.retry_now and reused):
                        break
                    prepared = None
                results[index] = _result(attempt, clock() - start)
        finally:
            if connection is not None:
                if busy or ahead is not None:  # stopped mid-transaction: its state is unknown
                    connection.abort()
                self._checkin(connection)

    def _look_ahead(
        self,
        connection: SmtpConnection,
        envelopes: Sequence[Envelope],
        indexes: Iterator[int],
        results: list[SendResult | None],
    ) -> _Ahead | None:
        """The lane's next message, prepared for ``connection`` when its commands may ride
        with the current content."""
        if (
            self._pacer is not None
            or not connection.can_pipeline_next()
            or connection.messages >= self.recycle_after
        ):
            return None
        for index in indexes:
            start = self._clock()
            made = connection.prepare(envelopes[index])
            if isinstance(made, Attempt):  # refused before any byte: answered at once
                results[index] = _result(made, self._clock() - start)
                continue
            return _Ahead(index, start, made)
        return None

    # -- the connections ---------------------------------------------------------------------

    async def _checkout(self) -> SmtpConnection:
        loop = asyncio.get_running_loop()
        while True:
            while self._idle:
                connection = self._idle.pop()
                if connection.usable and loop.time() - connection.last_used < self.max_idle:
                    return connection
                self._retire(connection)
            failure = self._failure
            if failure is not None and self._clock() < self._failure_until and self._open == 0:
                # Setting up failed a moment ago and no connection is left to wait for.
                self._wake()  # the next waiter learns the same at once
                raise SetupRefused(failure.phase, failure.code, failure.reply)
            if self._open < self.size and (failure is None or self._clock() >= self._failure_until):
                self._open += 1
                try:
                    connection = await open_connection(
                        self.config,
                        timeout=self.timeout,
                        ssl_context=self._ssl_context,
                        local_hostname=self._hostname(),
                    )
                except BaseException as exc:
                    self._open -= 1
                    self._wake()
                    if isinstance(exc, SetupRefused):
                        self._setup_failed(exc)
                    raise
                self._setup_worked()
                return connection
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # pass the turn we were given on
                else:
                    self._waiters.remove(waiter)
                raise

    def _checkin(self, connection: SmtpConnection) -> None:
        if connection.usable and connection.messages < self.recycle_after:
            self._idle.append(connection)
        else:
            self._retire(connection)
        self._wake()

    def _retire(self, connection: SmtpConnection) -> None:
        self._open -= 1
        if connection.usable:
            closing = connection.quit()
        else:
            connection.abort()
            closing = connection.closed()
        task = asyncio.get_running_loop().create_task(closing)
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _hostname(self) -> str:
        if self._local_hostname is None:
            self._local_hostname = socket.gethostname() or "localhost"
        return self._local_hostname

    def _setup_failed(self, refused: SetupRefused) -> None:
        self._failure = refused
        self._failure_until = self._clock() + self.setup_backoff
        key = (refused.phase, refused.code, refused.reply)
        if key != self._logged:
            self._logged = key
            log.warning(
                "smtp.setup_failed",
                extra={
                    "smtp": self.config.describe(),
                    "phase": refused.phase,
                    "code": refused.code,
                    "reply": refused.reply,
                    "hint": _hint(refused),
                },
            )

    def _setup_worked(self) -> None:
        self._failure = None
        if self._logged is not None:
            self._logged = None
            log.info("smtp.setup_recovered", extra={"smtp": self.config.describe()})

    async def aclose(self) -> None:
        """QUIT the idle connections and wait until they and those being retired are closed;
        the pool can be used again after."""
        idle, self._idle = self._idle, []
        self._open -= len(idle)
        await asyncio.gather(*(connection.quit() for connection in idle), *self._retiring)


@dataclass(slots=True)
class _Ahead:
    index: int
    start: float
    prepared: Prepared | None


def _result(attempt: Attempt, duration: float) -> SendResult:
    return SendResult(attempt.outcome, attempt.code, attempt.reply, attempt.phase, duration)


def _deferred(refused: SetupRefused) -> Attempt:
    return Attempt("deferred", refused.code, refused.reply, refused.phase)


def _hint(refused: SetupRefused) -> str:
    if refused.phase == "auth":
        return "check the user name and password in HOOKHUB_SMTP_URL"
    if refused.phase == "starttls":
        return "check the server's TLS (?tls= and ?verify= in HOOKHUB_SMTP_URL)"
    if refused.phase == "connect":
        return "check the host and port in HOOKHUB_SMTP_URL, and that the server is up"
    return "the server refused us before any message: see its reply"


class SmtpTransport:
    """The :class:`~hookhub.email.transport.MailTransport` seam over an :class:`SmtpPool`."""

    def __init__(self, pool: SmtpPool) -> None:
        self.pool = pool

    async def send(self, envelope: Envelope) -> SendResult:
        return await self.pool.send(envelope)

    async def send_many(self, envelopes: Sequence[Envelope]) -> list[SendResult]:
        return await self.pool.send_many(envelopes)

    async def aclose(self) -> None:
        await self.pool.aclose()

    def describe(self) -> str:
        return self.pool.describe()


def transport_from_settings(settings: Settings) -> MailTransport:
    """The transport ``HOOKHUB_SMTP_URL`` and its companions ask for (capture without one).

    Raises :class:`~hookhub.email.smtp_url.InvalidSmtpUrl` (which never quotes the password)
    for a URL that names no server: call it at start, so a typo stops the process at once.
    """
    url = settings.smtp_url.get_secret_value() if settings.smtp_url is not None else None
    return transport_from_url(
        url,
        connections=settings.smtp_connections,
        rate=settings.email_rate,
        timeout=settings.smtp_timeout,
    )


def transport_from_url(
    url: str | None, *, connections: int = 8, rate: float = 0.0, timeout: float = 30.0
) -> MailTransport:
    """SMTP to ``url`` (``HOOKHUB_SMTP_URL``), or capture when there is none.

    Raises :class:`~hookhub.email.smtp_url.InvalidSmtpUrl` for a URL that names no server.
    """
    if url is None or not url.strip():
        return CaptureTransport()
    pool = SmtpPool(parse_smtp_url(url), connections=connections, rate=rate, timeout=timeout)
    return SmtpTransport(pool)
