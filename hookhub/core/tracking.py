"""Signed tracking tokens for the public open, click and unsubscribe routes (``/t/o|c|u/{token}``).

A token is the URL-safe base64 (no padding) of ``version | email id (8 bytes) [| link (2 bytes)]``
followed by the first 12 bytes of HMAC-SHA256 over the token's kind and that payload: 23 or 25
characters. The kind is in the MAC, so an open token is no click or unsubscribe token. The key
comes from the secret key (:func:`tracking_signer`), derived for this purpose only; tokens made
under a previous key still parse while it is held for a rotation.

Pure: the key is handed in. :meth:`TrackingSigner.parse` answers None for anything it did not
make (tampered, truncated, of another kind, non-ASCII, oversized) and must never raise.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from hookhub.core.crypto import Keyring

Kind = Literal["o", "c", "u"]
KINDS: frozenset[str] = frozenset({"o", "c", "u"})
TAG_BYTES = 12
MAX_TOKEN_CHARS = 64
MAX_LINK = 0xFFFF
_VERSION = 1
_PURPOSE = b"hookhub tracking tokens v1"
_SHORT = struct.Struct(">BQ")  # version, email id
_LONG = struct.Struct(">BQH")  # version, email id, link
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]+\Z")


@dataclass(frozen=True, slots=True)
class TrackingRef:
    kind: Kind
    email_id: int
    link: int = 0


class TrackingSigner:
    """Makes and checks tracking tokens with ``key`` (and ``previous`` keys, check only)."""

    def __init__(self, key: bytes, previous: Iterable[bytes] = ()) -> None:
        if len(key) < 16:
            raise ValueError("the tracking key must be at least 16 bytes")
        # One keyed HMAC per key and kind, copied per token: the key schedule is paid once.
        self._macs = [
            {kind: hmac.new(k, kind.encode(), hashlib.sha256) for kind in KINDS}
            for k in (key, *previous)
        ]

    @staticmethod
    def _tag(macs: dict[str, hmac.HMAC], kind: str, payload: bytes) -> bytes:
        mac = macs[kind].copy()
        mac.update(payload)
        return mac.digest()[:TAG_BYTES]

    def token(self, kind: Kind, email_id: int, link: int = 0) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown tracking kind {kind!r}")
        if not 0 <= email_id < 2**64:
            raise ValueError(f"email id out of range: {email_id}")
        if kind == "c":
            if not 0 <= link <= MAX_LINK:
                raise ValueError(f"link index out of range: {link}")
            payload = _LONG.pack(_VERSION, email_id, link)
        else:
            if link:
                raise ValueError("only click tokens carry a link index")
            payload = _SHORT.pack(_VERSION, email_id)
        raw = payload + self._tag(self._macs[0], kind, payload)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def parse(self, kind: str, token: object) -> TrackingRef | None:
        """The reference ``token`` carries if this signer made it for ``kind``; else None."""
        if kind not in KINDS or not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            return None
        if not _TOKEN_CHARS.match(token):
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        layout = _LONG if kind == "c" else _SHORT
        if len(raw) != layout.size + TAG_BYTES:
            return None
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
            return None  # a non-canonical spelling of the same bytes
        payload, tag = raw[: layout.size], raw[layout.size :]
        if not any(hmac.compare_digest(tag, self._tag(m, kind, payload)) for m in self._macs):
            return None
        fields = layout.unpack(payload)
        if fields[0] != _VERSION:
            return None
        link = fields[2] if kind == "c" else 0
        return TrackingRef(kind=kind, email_id=fields[1], link=link)  # type: ignore[arg-type]


def tracking_signer(keyring: Keyring) -> TrackingSigner:
    """The signer for tracking links, its keys derived from the secret key (not the sealing key)."""
    current, *previous = keyring.subkeys(_PURPOSE)
    return TrackingSigner(current, previous)
