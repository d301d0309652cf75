"""What every inbound provider adapter is, and the small helpers their modules share.

A provider knows one sender's scheme: how it signs (:meth:`Provider.verify`, and
:meth:`Provider.sign` to imitate it), how its body parses, which id dedupes its events and what
type each event has. Adapters work on the exact bytes received and must never raise anything but
:class:`~hookhub.errors.HookhubError` subclasses for anything a client can send:
:class:`SignatureInvalid` (401) for headers, :class:`InvalidJSON`/:class:`BadRequest` (400) for
bodies.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from hookhub.core import jsoncodec
from hookhub.core.signing import DEFAULT_TOLERANCE, check_timestamp
from hookhub.errors import BadRequest, InvalidJSON, SignatureInvalid, ValidationFailed

NO_OPTIONS: Mapping[str, Any] = MappingProxyType({})
# Real signature headers are well under 1 KiB; a longer one is an attack or a mistake.
MAX_SIGNATURE_HEADER = 8192
FORM = "application/x-www-form-urlencoded"
MAX_FORM_FIELDS = 1000
# Dedupe keys come from the sender; longer ones are stored as their hash.
MAX_DEDUPE_KEY = 200


@dataclass(frozen=True, slots=True)
class RawRequest:
    """An inbound request as received: headers in arrival order (repeats kept) and raw body."""

    headers: tuple[tuple[str, str], ...]
    body: bytes
    content_type: str | None = None

    def __post_init__(self) -> None:
        lowered = tuple((name.lower(), value) for name, value in self.headers)
        object.__setattr__(self, "headers", lowered)
        if self.content_type is None:
            object.__setattr__(self, "content_type", self.header("content-type"))

    @classmethod
    def received(cls, headers: tuple[tuple[str, str], ...], body: bytes) -> RawRequest:
        """A request from headers whose names are already lower case (an ASGI server's).

        The receive path's constructor: it skips lowering every name again.
        """
        request = object.__new__(cls)
        object.__setattr__(request, "headers", headers)
        object.__setattr__(request, "body", body)
        object.__setattr__(request, "content_type", request.header("content-type"))
        return request

    @classmethod
    def build(
        cls, headers: Mapping[str, str] | Iterable[tuple[str, str]], body: bytes
    ) -> RawRequest:
        """A request from a header mapping or ``(name, value)`` pairs, in any letter case."""
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        return cls(tuple((str(name), str(value)) for name, value in pairs), body)

    @property
    def media_type(self) -> str:
        """``content_type`` without parameters, lower-cased (``""`` when absent)."""
        return (self.content_type or "").split(";", 1)[0].strip().lower()

    def header(self, name: str) -> str | None:
        """The first value of header ``name``, or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None

    def single_header(self, name: str) -> str:
        """The one non-empty value of ``name``; missing, repeated or empty is SignatureInvalid."""
        wanted = name.lower()
        values = [value for key, value in self.headers if key == wanted]
        if not values:
            raise SignatureInvalid(f"The {name} header is missing.")
        if len(values) > 1:
            raise SignatureInvalid(f"The {name} header is repeated.")
        value = values[0].strip()
        if not value:
            raise SignatureInvalid(f"The {name} header is empty.")
        return value


class Provider(ABC):
    """One sender's webhook scheme. Instances are stateless; one serves every request."""

    name: ClassVar[str]
    signature_headers: ClassVar[tuple[str, ...]]
    replay_window: ClassVar[float | None]
    preset_rules: ClassVar[tuple[dict[str, Any], ...]] = ()
    """Rules a new inbound webhook of this source starts with (DESIGN.md rule format)."""
    echoes_secret: ClassVar[bool] = True
    """Whether the answer to create shows a secret that was given (a generated one is always
    shown once); False for keys copied from the sender's dashboard."""

    def check_secret(self, secret: str | None, options: Mapping[str, Any] = NO_OPTIONS) -> None:
        """Raise ValidationFailed (422, naming the problem) for a secret this source could never
        verify with; ``None`` is a create without one (most sources then generate one)."""
        return None

    @abstractmethod
    def verify(
        self, request: RawRequest, secret: str, now: float, options: Mapping[str, Any] = NO_OPTIONS
    ) -> None:
        """Raise SignatureInvalid unless ``request`` was signed with ``secret``."""

    def parse(self, request: RawRequest) -> Any:
        """The JSON object in the body."""
        return json_object(request.body)

    @abstractmethod
    def dedupe_key(
        self, request: RawRequest, payload: Any, options: Mapping[str, Any] = NO_OPTIONS
    ) -> str | None:
        """The provider's id for this event, the same on every retry; None when it has none."""

    def dedupes_body(self, options: Mapping[str, Any] = NO_OPTIONS) -> bool:
        """Whether requests also dedupe on a hash of their body (within the dedupe window).

        For providers whose event id comes from a header the signature does not cover: a
        captured request replayed with a new id would otherwise be taken again.
        """
        return False

    def body_key(self, request: RawRequest, payload: Any) -> str | None:
        """The second dedupe key of a source that :meth:`dedupes_body`: the body's hash, or
        what else each request must not repeat (Mailgun's signature token)."""
        return "sha256:" + hashlib.sha256(request.body).hexdigest()

    @abstractmethod
    def event_type(
        self, request: RawRequest, payload: Any, options: Mapping[str, Any] = NO_OPTIONS
    ) -> str | None:
        """The provider's name for what happened (``customer.created``, ``orders/create``)."""

    @abstractmethod
    def sign(
        self, body: bytes, secret: str, now: float, options: Mapping[str, Any] = NO_OPTIONS
    ) -> dict[str, str]:
        """The headers the provider would send with ``body`` at ``now``."""

    def signed_request(
        self, body: bytes, secret: str, now: float, options: Mapping[str, Any] = NO_OPTIONS
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers the provider would send (Mailgun signs inside the body)."""
        return body, self.sign(body, secret, now, options)


# -- helpers shared by the provider modules ------------------------------------------------------


def signature_value(request: RawRequest, name: str) -> str:
    """The signature header ``name``: exactly one, non-empty, ASCII and of sane length."""
    value = request.single_header(name)
    if len(value) > MAX_SIGNATURE_HEADER:
        raise SignatureInvalid(f"The {name} header is too long.")
    if not value.isascii():
        raise SignatureInvalid(f"The {name} header contains non-ASCII characters.")
    return value


def hmac_digest(secret: str | bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.digest(key, message, algorithm)  # one call into OpenSSL


def matches_any(expected: bytes, candidates: Iterable[bytes]) -> bool:
    """Whether any candidate equals ``expected``, each compared in constant time."""
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate)
    return matched


def decode_hex(text: str) -> bytes | None:
    try:
        return binascii.unhexlify(text.strip())
    except (binascii.Error, ValueError):
        return None


def decode_base64(text: str) -> bytes | None:
    try:
        return binascii.a2b_base64(text.strip(), strict_mode=True)
    except (binascii.Error, ValueError):
        return None


def verify_prefixed_body_hmac(
    request: RawRequest,
    secret: str,
    *,
    header: str,
    prefix: str,
    decode: Callable[[str], bytes | None],
    encoding: str,
) -> None:
    """``<header>: <prefix><HMAC-SHA256 of the body>`` (GitHub: hex; Typeform: base64)."""
    value = signature_value(request, header)
    if not value.startswith(prefix):
        raise SignatureInvalid(f"The {header} header must start with {prefix!r}.")
    signature = decode(value.removeprefix(prefix))
    if signature is None:
        raise SignatureInvalid(f"The {header} header is not {encoding}.")
    if not matches_any(hmac_digest(secret, request.body), [signature]):
        raise SignatureInvalid(f"The {header} signature does not match the secret.")


def timestamped_signatures(
    request: RawRequest, header: str, now: float, window: float
) -> tuple[str, list[bytes]]:
    """Parse ``t=<unix>,v1=<hex>[,v1=<hex>...]`` (Stripe, Calendly); other schemes are ignored.

    Returns the timestamp as sent (it is part of the signed bytes), checked against ``now`` ±
    ``window``, and the decoded v1 signatures.
    """
    value = signature_value(request, header)
    timestamps: list[str] = []
    signatures: list[bytes] = []
    for item in value.split(","):
        key, sep, text = item.strip().partition("=")
        if not sep:
            raise SignatureInvalid(f"The {header} header is not a list of key=value items.")
        if key == "t":
            timestamps.append(text.strip())
        elif key == "v1" and (decoded := decode_hex(text)) is not None:
            signatures.append(decoded)
    if len(timestamps) != 1:
        raise SignatureInvalid(f"The {header} header needs exactly one t=<timestamp>.")
    if not signatures:
        raise SignatureInvalid(f"The {header} header holds no valid v1 signature.")
    check_timestamp(timestamps[0], now, window, header=header)
    return timestamps[0], signatures


class TimestampedHexScheme(Provider):
    """Stripe's scheme, also Calendly's: ``t=<unix>,v1=<hex>`` of ``"{t}." + body``.

    Subclasses name the header and the default replay window; the secret is the HMAC key as-is.
    """

    header_name: ClassVar[str]

    def verify(
        self, request: RawRequest, secret: str, now: float, options: Mapping[str, Any] = NO_OPTIONS
    ) -> None:
        window = tolerance(options, self.replay_window)
        timestamp, signatures = timestamped_signatures(request, self.header_name, now, window)
        expected = hmac_digest(secret, timestamp.encode("ascii") + b"." + request.body)
        if not matches_any(expected, signatures):
            raise SignatureInvalid(f"No v1 signature in {self.header_name} matches the secret.")

    def sign(
        self, body: bytes, secret: str, now: float, options: Mapping[str, Any] = NO_OPTIONS
    ) -> dict[str, str]:
        timestamp = str(int(now))
        digest = hmac_digest(secret, timestamp.encode("ascii") + b"." + body).hex()
        return {
            "Content-Type": "application/json; charset=utf-8",
            self.header_name: f"t={timestamp},v1={digest}",
        }


def tolerance(options: Mapping[str, Any], default: float | None) -> float:
    """The replay window in seconds: ``options["tolerance"]`` or the provider's default."""
    value = options.get("tolerance", DEFAULT_TOLERANCE if default is None else default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValidationFailed("The 'tolerance' option must be a non-negative number of seconds.")
    return float(value)


def json_object(body: bytes) -> dict[str, Any]:
    payload = jsoncodec.loads(body)
    if not isinstance(payload, dict):
        raise InvalidJSON("The body must be a JSON object.")
    return payload


def form_fields(body: bytes) -> list[tuple[str, str]]:
    """The fields of an ``application/x-www-form-urlencoded`` body, in order."""
    try:
        text = body.decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError as exc:  # UnicodeDecodeError is one; so is too many fields
        raise BadRequest(f"The form body cannot be parsed: {exc}") from exc


def text_field(payload: Any, *path: str) -> str | None:
    """``payload[path[0]][path[1]]...`` as text when it is a string or an integer, else None."""
    value = payload
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value) or None


def bounded_key(key: str | None) -> str | None:
    """``key`` itself when short, else a stable digest of it (sender-controlled length).

    A key with a NUL character is digested too: PostgreSQL cannot store one in a text column.
    """
    if key is None or (len(key) <= MAX_DEDUPE_KEY and "\x00" not in key):
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def header_key(request: RawRequest, *names: str) -> str | None:
    """The first non-empty value among headers ``names``, bounded for use as a dedupe key."""
    for name in names:
        value = (request.header(name) or "").strip()
        if value:
            return bounded_key(value)
    return None
