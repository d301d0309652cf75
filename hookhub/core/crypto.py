"""Encryption of secrets at rest: AES-256-GCM under subkeys derived (HKDF-SHA256) from a master key.

A sealed value reads ``enc:v1:<key id>:<urlsafe base64 of nonce + ciphertext + tag>``. The key
id names the master key (so that several keys can be held during a rotation) without revealing
it; the purpose of the value (which column it belongs to) is bound as associated data, so that a
ciphertext copied into another column does not decrypt there.

Pure: no database, no environment; the caller hands in keys and randomness. It must never log
or put a key or a plaintext into an exception message.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "enc:v1:"
KEY_BYTES = 32
NONCE_BYTES = 12
_KEY_ID_INFO = b"hookhub key id v1"
_ENCRYPTION_INFO = b"hookhub secrets at rest v1"


class CryptoError(Exception):
    """A value cannot be sealed or opened; the message names no key and no plaintext."""


def _hkdf(master: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(master)


def parse_key(text: str) -> bytes:
    """A master key from its text form: 32 bytes in standard or URL-safe base64."""
    cleaned = text.strip()
    padded = cleaned + "=" * (-len(cleaned) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CryptoError("the key is not base64") from exc
    if len(raw) != KEY_BYTES:
        raise CryptoError(f"the key must be {KEY_BYTES} bytes once base64-decoded, not {len(raw)}")
    return raw


def format_key(raw: bytes) -> str:
    """The text form of a master key (URL-safe base64, no padding issues: 44 characters)."""
    return base64.urlsafe_b64encode(raw).decode()


def new_key(random: Callable[[int], bytes] = os.urandom) -> str:
    return format_key(random(KEY_BYTES))


@dataclass(frozen=True)
class MasterKey:
    """One master key: its public id and the AES key derived from it."""

    id: str
    aead: AESGCM = field(repr=False)

    @classmethod
    def derive(cls, raw: bytes) -> MasterKey:
        key_id = _hkdf(raw, _KEY_ID_INFO, 6).hex()
        return cls(id=key_id, aead=AESGCM(_hkdf(raw, _ENCRYPTION_INFO, KEY_BYTES)))


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


def key_id_of(value: str) -> str | None:
    """The id of the key a sealed value was made with; None for a value that is not sealed."""
    if not is_sealed(value):
        return None
    key_id, _, _ = value[len(PREFIX) :].partition(":")
    return key_id


class Keyring:
    """The current key (seals) and the previous ones (open only), from the newest down."""

    def __init__(
        self,
        current: bytes,
        previous: Iterable[bytes] = (),
        *,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.current = MasterKey.derive(current)
        self.keys: dict[str, MasterKey] = {self.current.id: self.current}
        self._raw = [current]
        for raw in previous:
            key = MasterKey.derive(raw)
            if key.id not in self.keys:
                self.keys[key.id] = key
                self._raw.append(raw)
        self._random = random

    def subkeys(self, purpose: bytes, length: int = KEY_BYTES) -> list[bytes]:
        """A key for ``purpose`` from each master key, the current one first (HKDF-SHA256).

        For uses other than sealing (signing tracking links, ...): a distinct ``purpose`` gives
        keys unrelated to the sealing keys and to every other purpose's.
        """
        if purpose in (_KEY_ID_INFO, _ENCRYPTION_INFO):
            raise ValueError("that purpose is reserved for sealing")
        return [_hkdf(raw, purpose, length) for raw in self._raw]

    @property
    def ids(self) -> list[str]:
        return list(self.keys)

    def seal(self, plaintext: str, purpose: str) -> str:
        nonce = self._random(NONCE_BYTES)
        sealed = self.current.aead.encrypt(nonce, plaintext.encode(), purpose.encode())
        body = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{PREFIX}{self.current.id}:{body}"

    def open(self, value: str, purpose: str) -> str:
        if not is_sealed(value):
            raise CryptoError("the value is not sealed")
        key_id, _, body = value[len(PREFIX) :].partition(":")
        key = self.keys.get(key_id)
        if key is None:
            raise CryptoError(
                f"the value was sealed with key {key_id}, which is not among the configured"
                f" keys ({', '.join(self.keys)}): set HOOKHUB_SECRET_KEY or"
                " HOOKHUB_SECRET_KEY_PREVIOUS to that key"
            )
        try:
            raw = base64.urlsafe_b64decode(body.encode())
            return key.aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], purpose.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise CryptoError(f"a value sealed with key {key_id} does not open") from exc
