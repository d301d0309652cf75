"""Outgoing messages as RFC 5322 / MIME bytes, built directly (no ``email.message``).

The standard library's ``EmailMessage`` costs about 2 ms a message; a campaign builds hundreds
of thousands, so this writes the bytes itself: CRLF line endings, ``multipart/alternative`` with
the text part then the HTML part, each quoted-printable (lines of at most 76 characters) or
base64 where that is shorter, headers from :mod:`hookhub.email.headers`. The same message always
gives the same bytes (the boundary comes from the Message-ID), so a retry sends exactly what the
first attempt sent. ``bench/bench_email_build.py`` measures it.

This module must never read a clock or randomness (the date and Message-ID are handed in), and
never let caller input break the header block (see ``headers.custom_headers``).
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from functools import lru_cache

from hookhub.email.headers import (
    Address,
    address_header,
    ascii_address,
    custom_headers,
    unstructured,
)
from hookhub.errors import ValidationFailed

_MESSAGE_ID = re.compile(r"<[!-;=?-~]{1,250}@[A-Za-z0-9.-]{1,253}>\Z")
_NONCE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
_PRINTABLE = bytes(range(32, 127)) + b"\t\r\n"
_SPACES = (b" ", b"\t")
_BASE64_LINE = re.compile(rb".{76}", re.DOTALL)
_UNSUBSCRIBE_URL = re.compile(r"https?://[!-;=?-~]{1,1900}\Z", re.IGNORECASE)  # no <, >, space


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """Everything one message's bytes are made of."""

    message_id: str
    sender: Address
    to: Address | Sequence[Address]
    subject: str
    html: str
    text: str
    date: datetime
    reply_to: Address | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    list_unsubscribe: str | None = None  # an https URL (RFC 8058 one-click when one_click)
    list_unsubscribe_mailto: str | None = None  # an address
    one_click: bool = True


def make_message_id(email_id: int, domain: str, nonce: str) -> str:
    """``<id.nonce@domain>``: unique per email, stable across its retries."""
    if not _NONCE.match(nonce):
        raise ValueError("the Message-ID nonce must be 1-64 characters of [A-Za-z0-9_-]")
    return f"<{int(email_id)}.{nonce}@{_host(domain)}>"


@lru_cache(maxsize=64)
def _host(domain: str) -> str:
    return ascii_address(f"x@{domain}").partition("@")[2]


@lru_cache(maxsize=64)  # a batch's messages share a handful of dates
def _date_header(date: datetime) -> str:
    return "Date: " + format_datetime(date)


def _canonical_lines(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n").encode("utf-8")


def _wrap(line: bytes) -> bytes:
    """A long encoded line as soft-broken lines of at most 76 characters, escapes kept whole."""
    pieces = []
    start = 0
    while len(line) - start > 76:
        end = start + 75
        if line[end - 1] == 61:  # "=" would be cut from its two hex digits
            end -= 1
        elif line[end - 2] == 61:
            end -= 2
        pieces.append(line[start:end])
        start = end
    pieces.append(line[start:])
    return b"=\r\n".join(pieces)


def quoted_printable(raw: bytes) -> bytes:
    """RFC 2045 quoted-printable of CRLF text, with C-level byte operations where it can.

    Text that is printable ASCII (HTML, mostly) needs only its "=" escaped, its line-ending
    spaces escaped and its long lines wrapped; anything else goes to ``binascii.b2a_qp``.
    """
    if raw.translate(None, _PRINTABLE):
        encoded = binascii.b2a_qp(raw, quotetabs=False, istext=True, header=False)
        # b2a_qp ends its soft line breaks as the input's first line ends: bare LF in one line.
        return encoded if b"\r\n" in raw else encoded.replace(b"\n", b"\r\n")
    lines = raw.replace(b"=", b"=3D").split(b"\r\n")
    return b"\r\n".join(
        [_encode_line(line) if len(line) > 76 or line[-1:] in _SPACES else line for line in lines]
    )


def _encode_line(line: bytes) -> bytes:
    if line[-1:] in _SPACES:  # a space or tab ending a line would be lost in transport
        line = line[:-1] + b"=%02X" % line[-1]
    return _wrap(line) if len(line) > 76 else line


def encode_body(text: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, encoded body with CRLF lines of at most 76 characters)."""
    raw = _canonical_lines(text)
    quoted = quoted_printable(raw)
    if raw.isascii() or len(quoted) <= len(raw) * 4 // 3 + len(raw) // 38:
        return "quoted-printable", quoted
    encoded = binascii.b2a_base64(raw, newline=False)
    return "base64", _BASE64_LINE.sub(b"\\g<0>\r\n", encoded) + (
        b"" if len(encoded) % 76 == 0 else b"\r\n"
    )


def _part(boundary: bytes, content_type: bytes, text: str) -> list[bytes]:
    encoding, body = encode_body(text)
    return [
        b"--" + boundary + b"\r\n",
        b"Content-Type: " + content_type + b"; charset=utf-8\r\n",
        b"Content-Transfer-Encoding: " + encoding.encode() + b"\r\n\r\n",
        body,
        b"\r\n",  # belongs to the next boundary (RFC 2046): a final line break stays the body's
    ]


def _list_unsubscribe(msg: OutgoingMessage) -> list[str]:
    entries: list[str] = []
    if msg.list_unsubscribe is not None:
        if not _UNSUBSCRIBE_URL.match(msg.list_unsubscribe):
            raise ValidationFailed(
                "list_unsubscribe must be an http(s) URL without spaces or angle brackets.",
                details={"field": "list_unsubscribe"},
            )
        entries.append(f"<{msg.list_unsubscribe}>")
    if msg.list_unsubscribe_mailto is not None:
        entries.append(f"<mailto:{ascii_address(msg.list_unsubscribe_mailto)}>")
    if not entries:
        return []
    lines = ["List-Unsubscribe: " + ",\r\n ".join(entries)]
    if msg.one_click and msg.list_unsubscribe is not None:
        lines.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
    return lines


def message_id_header(message_id: str) -> str:
    bracketed = message_id if message_id.startswith("<") else f"<{message_id}>"
    if not _MESSAGE_ID.match(bracketed):
        raise ValidationFailed(
            "message_id must look like <unique@domain>.", details={"field": "message_id"}
        )
    return bracketed


def build_message(msg: OutgoingMessage) -> bytes:
    """The message's bytes (CRLF throughout), ready for SMTP DATA or to be stored as sent."""
    if msg.date.tzinfo is None:
        raise ValueError("the message date must be timezone-aware")
    message_id = message_id_header(msg.message_id)
    to = (msg.to,) if isinstance(msg.to, Address) else tuple(msg.to)
    boundary = "=_hh_" + hashlib.sha256(message_id.encode()).hexdigest()[:32]
    lines = [
        _date_header(msg.date),
        address_header("From", (msg.sender,)),
        address_header("To", to),
    ]
    if msg.reply_to is not None:
        lines.append(address_header("Reply-To", (msg.reply_to,)))
    lines.append(unstructured("Subject", msg.subject))
    lines.append("Message-ID: " + message_id)
    lines.extend(_list_unsubscribe(msg))
    lines.extend(custom_headers(msg.headers))
    lines.append("MIME-Version: 1.0")
    lines.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
    head = "\r\n".join(lines).encode("ascii") + b"\r\n\r\n"
    marker = boundary.encode("ascii")
    return b"".join(
        [
            head,
            *_part(marker, b"text/plain", msg.text),
            *_part(marker, b"text/html", msg.html),
            b"--" + marker + b"--\r\n",
        ]
    )


__all__ = ["Address", "OutgoingMessage", "build_message", "encode_body", "make_message_id"]
