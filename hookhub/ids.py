"""Identifiers and secrets: the one module that draws randomness for them.

Message ids are time-ordered (48-bit millisecond timestamp + 80 random bits, Crockford base32,
like ULID) so that listing messages by id lists them by creation time; within one process they
are strictly increasing (monotonic ULID), so the messages of one transaction list in the order
they were written.
"""

from __future__ import annotations

import base64
import os
import secrets
import threading
import time

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_PAIRS = [_CROCKFORD[n >> 5] + _CROCKFORD[n & 31] for n in range(1024)]
"""Two base32 characters for every 10-bit value."""
_SHIFTS = tuple(range(120, -1, -10))


def _id_body(ms: int, rand: int) -> str:
    """``ms`` in 10 and ``rand`` in 16 Crockford base32 characters, most significant first,
    10 bits at a time: 1.5 us where a 5-bit loop took 7 (a profile of automation steps, which
    write a message each, had that loop on top)."""
    value = ((ms & ((1 << 50) - 1)) << 80) | (rand & ((1 << 80) - 1))
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


_last = [0, 0]  # millisecond and random part of the newest id of this process
_lock = threading.Lock()


def sortable_id(prefix: str, now: float | None = None) -> str:
    """Time-ordered; within one process strictly increasing, even within one millisecond."""
    ms = int((time.time() if now is None else now) * 1000)
    with _lock:
        if ms <= _last[0]:
            ms, rand = _last[0], _last[1] + 1  # same millisecond (or clock stepped back)
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1  # room to count up
        _last[0], _last[1] = ms, rand
    return f"{prefix}_{_id_body(ms, rand)}"


def message_id(now: float | None = None) -> str:
    return sortable_id("msg", now)


def url_token() -> str:
    """An unguessable path segment (160 bits)."""
    return secrets.token_urlsafe(20)


def api_key() -> str:
    return "hh_" + secrets.token_urlsafe(32)


def webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode("ascii")


def email_message_id(domain: str, now: float | None = None) -> str:
    """An RFC 5322 Message-ID (without ``<>``), drawn before the email is stored so that it is
    the same on every attempt: time-ordered, unique, and saying nothing about the recipient."""
    return f"{sortable_id('', now)}@{domain}"
