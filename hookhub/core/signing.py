"""Standard Webhooks signatures: sign the messages Hookhub sends, verify the ones it receives.

``webhook-signature`` is ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, keyed with the
base64-decoded part of a ``whsec_`` secret; several space-separated signatures carry a secret
rotation. Pure: the time is always handed in, nothing here reads a clock or draws randomness.
It must never compare signatures with ``==``, and never let a malformed header escape as
anything but :class:`~hookhub.errors.SignatureInvalid`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
from collections.abc import Mapping, Sequence

from hookhub.errors import SignatureInvalid, ValidationFailed

__all__ = [
    "DEFAULT_TOLERANCE",
    "SECRET_PREFIX",
    "check_timestamp",
    "headers",
    "parse_secret",
    "sign",
    "signature_header",
    "verify",
]

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300.0
_VERSION = "v1"
# Twelve digits reach the year 33658; anything longer is garbage, not a time.
_MAX_TIMESTAMP_DIGITS = 12


@functools.lru_cache(maxsize=1024)  # every delivery signs; a secret is decoded once
def parse_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (a bare base64 secret is accepted too)."""
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailed(
            "A webhook secret must be 'whsec_' followed by base64 (or base64 alone)."
        ) from exc
    if not key:
        raise ValidationFailed("A webhook secret must not be empty.")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` sent as message ``msg_id`` at ``timestamp``."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise TypeError("timestamp must be whole seconds since the epoch (int)")
    digest = _digest(_secret_key(secret), msg_id, str(timestamp), body)
    return f"{_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per active secret, space-separated."""
    keys = _as_list(secrets)
    if not keys:
        raise ValidationFailed("At least one webhook secret is needed to sign.")
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in keys)


def headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
    }


def check_timestamp(
    value: str, now: float, tolerance: float, *, header: str = "webhook-timestamp"
) -> int:
    """The timestamp in ``value`` if it is whole seconds within ``tolerance`` of ``now``."""
    text = value.strip()
    # isascii() matters: str.isdigit() and int() also accept other scripts' digits.
    if not (text.isascii() and text.isdigit() and len(text) <= _MAX_TIMESTAMP_DIGITS):
        raise SignatureInvalid(f"The {header} timestamp is not whole seconds since the epoch.")
    timestamp = int(text)
    if now - timestamp > tolerance:
        raise SignatureInvalid(f"The {header} timestamp is too old (more than {tolerance:g} s).")
    if timestamp - now > tolerance:
        raise SignatureInvalid(
            f"The {header} timestamp is too far in the future (more than {tolerance:g} s)."
        )
    return timestamp


def verify(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> None:
    """Raise :class:`SignatureInvalid` unless one signature matches one of ``secrets``.

    ``headers`` use lower-case names. Timestamps more than ``tolerance`` seconds away from
    ``now``, in either direction, are refused.
    """
    msg_id = _required(headers, "webhook-id")
    timestamp_text = _required(headers, "webhook-timestamp")
    signatures = _required(headers, "webhook-signature")
    check_timestamp(timestamp_text, now, tolerance)
    keys = [parse_secret(secret) for secret in _as_list(secrets)]
    if not keys:
        raise SignatureInvalid("No webhook secret is configured to verify against.")
    expected = [_digest(key, msg_id, timestamp_text.strip(), body) for key in keys]

    offered = []
    for entry in signatures.split():
        version, _, encoded = entry.partition(",")
        if version != _VERSION:
            continue  # other schemes (v1a, future versions) are not ours to check
        try:
            offered.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not offered:
        raise SignatureInvalid("The webhook-signature header holds no valid v1 signature.")
    matched = False
    for candidate in offered:
        for digest in expected:
            matched |= hmac.compare_digest(candidate, digest)
    if not matched:
        raise SignatureInvalid("No signature in webhook-signature matches the secret.")


def _digest(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    mac = _keyed(key).copy()
    mac.update(msg_id.encode("utf-8", "surrogatepass") + b"." + timestamp.encode("ascii") + b".")
    mac.update(body)
    return mac.digest()


@functools.lru_cache(maxsize=1024)
def _keyed(key: bytes) -> hmac.HMAC:
    # A keyed HMAC copied per message: OpenSSL looks the digest up and keys it once, not on
    # every signature (in a busy worker that lookup cost more than hashing the body).
    return hmac.new(key, digestmod=hashlib.sha256)


@functools.lru_cache(maxsize=1024)  # a worker signs with the same few secrets all day
def _secret_key(secret: str) -> bytes:
    return parse_secret(secret)


def _required(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None or not value.strip():
        raise SignatureInvalid(f"The {name} header is missing or empty.")
    return value


def _as_list(secrets: Sequence[str]) -> list[str]:
    # A lone string is a Sequence[str] too; signing with each of its characters would be a bug.
    return [secrets] if isinstance(secrets, str) else list(secrets)
