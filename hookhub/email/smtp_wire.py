"""SMTP's wire format for :mod:`hookhub.email.smtp`: replies read off a socket, messages made ready.

:class:`ReplyReader` is the asyncio protocol under one SMTP connection: it cuts what the server
sends into replies (``250-...`` continuation lines joined with the final ``250 ...`` line) and
wakes the connection once as many replies as it waits for have arrived, the connection is lost,
or the wait times out. It is an ``asyncio.Protocol`` rather than a ``StreamReader`` because a
pipelined transaction is one write and three replies that usually arrive in one read: cutting
them here costs one ``split`` and one wake-up (``bench/bench_email_transport.py`` measures the
client against aiosmtplib, which reads line by line through a stream).

:func:`to_wire` turns message bytes into DATA's content: CRLF line endings, dot-stuffed, ending
with CRLF.CRLF, in a few C-speed passes over the bytes.

Nothing here logs, and nothing here ever sees a password.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import cast

__all__ = ["MAX_REPLY_BYTES", "Reply", "ReplyReader", "to_wire"]

MAX_REPLY_BYTES = 64 * 1024
"""A reply (all its lines) longer than this is not SMTP: the connection is dropped."""

Reply = tuple[int, bytes]
"""A reply's code and its text (the lines after the code, joined with ``\\n``)."""


def to_wire(data: bytes) -> bytes:
    """``data`` as DATA's content: CRLF line endings, a dot doubled at the start of any line
    (RFC 5321 4.5.2), and the final CRLF.CRLF.

    Data already in CRLF form (what the MIME builder makes) is only counted and scanned; the
    rest is normalized first (bare LF or CR become CRLF).
    """
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf or data.count(b"\r") != crlf:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    data = data.replace(b"\r\n.", b"\r\n..")  # the same object back when there is no dot
    if data[:1] == b".":
        data = b"." + data
    if not data:
        return b".\r\n"
    if data[-2:] == b"\r\n":
        return data + b".\r\n"
    return data + b"\r\n.\r\n"


class ReplyReader(asyncio.Protocol):
    """Collects the server's replies; :meth:`wait` waits for a number of them with a timeout."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.replies: deque[Reply] = deque()
        self.lost = False
        """The connection is gone (closed by the server, reset, or dropped by us)."""
        self.timed_out = False
        self.closed: asyncio.Future[None] = loop.create_future()
        """Done once the transport has called :meth:`connection_lost`."""
        self.error = ""
        """Why the connection was lost, when we know (a protocol violation, a reset)."""
        self._partial: list[bytes] = []
        self._partial_size = 0
        self._tail = b""
        self._waiter: asyncio.Future[None] | None = None
        self._want = 0
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport (hookhub serve and worker run on uvloop) is no subclass of
        # asyncio.Transport, though it has all of its methods: an isinstance check refuses it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._tail:
            data = self._tail + data
            self._tail = b""
        if data[-1:] != b"\n":
            cut = data.rfind(b"\n") + 1
            self._tail = data[cut:]
            if len(self._tail) + self._partial_size > MAX_REPLY_BYTES:
                self._violation("a reply line longer than 64 KiB")
                return
            data = data[:cut]
            if not data:
                return
        replies = self.replies
        for line in data.split(b"\n")[:-1]:
            if line[-1:] == b"\r":
                line = line[:-1]
            code = line[:3]
            if not code.isdigit() or (len(line) > 3 and line[3] not in b" -"):
                self._violation("a reply that is not SMTP")
                return
            if line[3:4] == b"-":
                self._partial.append(line[4:])
                self._partial_size += len(line)
                if self._partial_size > MAX_REPLY_BYTES:
                    self._violation("a reply longer than 64 KiB")
                    return
                continue
            if self._partial:
                self._partial.append(line[4:])
                replies.append((int(code), b"\n".join(self._partial)))
                self._partial = []
                self._partial_size = 0
            else:
                replies.append((int(code), line[4:]))
        waiter = self._waiter
        if waiter is not None and len(replies) >= self._want and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool | None:
        return None  # close our side too: the server has hung up

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.closed.done():
            self.closed.set_result(None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if exc is not None and not self.error:
            self.error = _describe(exc)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def at_rest(self) -> bool:
        """No part of a reply is waiting to be completed."""
        return not self._tail and not self._partial

    # -- waiting -----------------------------------------------------------------------------

    async def wait(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` replies are queued: True, or False on a lost connection or a
        timeout (``timed_out`` says which). Never raises for the network.

        The timeout costs no timer per wait: one timer per connection, armed for the
        earliest deadline, moves itself to the current deadline when it fires early.
        """
        if len(self.replies) >= count:
            return True
        if self.lost:
            return False
        loop = self.loop
        waiter = loop.create_future()
        self._waiter = waiter
        self._want = count
        deadline = loop.time() + timeout
        self._deadline = deadline
        if self._timer is None or self._timer.when() > deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(deadline, self._check_deadline)
        try:
            await waiter
        finally:
            self._waiter = None
        return len(self.replies) >= count

    def _check_deadline(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self.loop.time() >= self._deadline:
            self.timed_out = True
            waiter.set_result(None)
        else:
            self._timer = self.loop.call_at(self._deadline, self._check_deadline)

    def _violation(self, what: str) -> None:
        self.error = f"protocol error: the server sent {what}"
        self._tail = b""
        self._partial = []
        if self.transport is not None:
            self.transport.abort()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
