"""Generic: any app that can POST JSON or a form, authenticated the way its owner configures.

Options (all optional):

- ``auth``: ``"hmac"``, ``"bearer"``, ``"basic"`` or ``"none"``; default ``"hmac"`` when a secret
  is set, ``"none"`` when the secret is empty (then every request is accepted). A webhook without
  a secret is only created with ``"auth": "none"`` spelled out (``InboundService.create``).
- ``header`` (hmac): the header carrying the signature, default ``X-Signature``.
- ``algorithm`` (hmac): ``sha256`` (default), ``sha1`` or ``sha512``, of the raw body.
- ``encoding`` (hmac): ``hex`` (default) or ``base64``.
- ``prefix`` (hmac): text before the digest, such as ``sha256=``; default none.
- ``username`` (basic): the user name, the secret being the password; without it the secret is
  ``user:password``. Bearer expects ``Authorization: Bearer <secret>``.
- ``dedupe_header`` or ``dedupe_path``: where the sender's event id is, a header name or a dotted
  key into the payload (``data.id``; list items by index, ``items.0.id``). Without, no dedupe.
- ``event_type_header`` or ``event_type_path``: likewise for the event type.

Bodies are JSON (any value), or ``application/x-www-form-urlencoded``, which parses to a dict of
strings (a repeated field to a list). No timestamp is signed, so there is no replay window.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from hookhub.core import jsoncodec
from hookhub.errors import SignatureInvalid, ValidationFailed
from hookhub.inbound.providers.base import (
    FORM,
    NO_OPTIONS,
    Provider,
    RawRequest,
    bounded_key,
    decode_base64,
    decode_hex,
    form_fields,
    header_key,
    hmac_digest,
    matches_any,
    signature_value,
)

AUTH_MODES = ("hmac", "bearer", "basic", "none")
ALGORITHMS = ("sha256", "sha1", "sha512")
ENCODINGS = ("hex", "base64")


@dataclass(frozen=True, slots=True)
class GenericAuth:
    """The checked authentication options of one generic inbound webhook."""

    mode: str
    header: str = "X-Signature"
    algorithm: str = "sha256"
    encoding: str = "hex"
    prefix: str = ""
    credentials: bytes = b""  # the bearer token, or "user:password" for basic


def auth_settings(secret: str, options: Mapping[str, Any] = NO_OPTIONS) -> GenericAuth:
    """Check the options against ``secret``; ValidationFailed says what is wrong."""
    mode = str(options.get("auth") or ("hmac" if secret else "none"))
    algorithm = str(options.get("algorithm", "sha256")).lower()
    encoding = str(options.get("encoding", "hex")).lower()
    choices: list[tuple[str, str, tuple[str, ...]]] = [
        ("auth", mode, AUTH_MODES),
        ("algorithm", algorithm, ALGORITHMS),
        ("encoding", encoding, ENCODINGS),
    ]
    for option, value, allowed in choices:
        if value not in allowed:
            raise ValidationFailed(f"The {option!r} option must be one of {', '.join(allowed)}.")
    if mode != "none" and not secret:
        raise ValidationFailed(f"Authentication {mode!r} needs a secret.")
    credentials = secret
    if mode == "basic":
        username = options.get("username")
        credentials = f"{username}:{secret}" if username else secret
        if ":" not in credentials:
            raise ValidationFailed("Basic auth needs a 'username' option or a 'user:pass' secret.")
    return GenericAuth(
        mode=mode,
        header=str(options.get("header") or "X-Signature"),
        algorithm=algorithm,
        encoding=encoding,
        prefix=str(options.get("prefix") or ""),
        credentials=credentials.encode("utf-8"),
    )


def _authorization(request: RawRequest, scheme: str) -> str:
    kind, _, token = signature_value(request, "Authorization").partition(" ")
    if kind.lower() != scheme.lower() or not token.strip():
        raise SignatureInvalid(f"The Authorization header must be '{scheme} <credentials>'.")
    return token.strip()


def _path_value(payload: Any, path: str) -> Any:
    value = payload
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isascii() and part.isdigit():
            index = int(part)
            value = value[index] if index < len(value) else None
        else:
            return None
    return value


def _lookup(request: RawRequest, payload: Any, options: Mapping[str, Any], what: str) -> str | None:
    if options.get(f"{what}_header"):
        return header_key(request, str(options[f"{what}_header"]))
    if options.get(f"{what}_path"):
        value = _path_value(payload, str(options[f"{what}_path"]))
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return bounded_key(str(value))
    return None


class GenericProvider(Provider):
    name: ClassVar[str] = "generic"
    # The common case of "any app": a sign-up form or a JSON object with an email field.
    preset_rules: ClassVar[tuple[dict[str, Any], ...]] = (
        {
            "name": "contact from an email field",
            "when": "email",
            "contact": {
                "email": "email",
                "attributes": {
                    "FIRSTNAME": "first_name || firstname",
                    "LASTNAME": "last_name || lastname",
                },
                "mode": "upsert",
            },
        },
    )
    signature_headers: ClassVar[tuple[str, ...]] = ()
    replay_window: ClassVar[float | None] = None

    def verify(
        self, request: RawRequest, secret: str, now: float, options: Mapping[str, Any] = NO_OPTIONS
    ) -> None:
        auth = auth_settings(secret, options)
        if auth.mode == "none":
            return
        if auth.mode in ("bearer", "basic"):
            token = _authorization(request, auth.mode)
            offered = token.encode("ascii") if auth.mode == "bearer" else decode_base64(token)
            if offered is None or not matches_any(auth.credentials, [offered]):
                raise SignatureInvalid(f"The {auth.mode} credentials are wrong.")
            return
        value = signature_value(request, auth.header)
        if not value.startswith(auth.prefix):
            raise SignatureInvalid(f"The {auth.header} header must start with {auth.prefix!r}.")
        encoded = value.removeprefix(auth.prefix)
        signature = decode_hex(encoded) if auth.encoding == "hex" else decode_base64(encoded)
        if signature is None:
            raise SignatureInvalid(f"The {auth.header} header is not {auth.encoding}.")
        expected = hmac_digest(auth.credentials, request.body, auth.algorithm)
        if not matches_any(expected, [signature]):
            raise SignatureInvalid(f"The {auth.header} signature does not match the secret.")

    def parse(self, request: RawRequest) -> Any:
        if request.media_type != FORM:
            return jsoncodec.loads(request.body)
        fields: dict[str, Any] = {}
        for key, value in form_fields(request.body):
            if key not in fields:
                fields[key] = value
            elif isinstance(fields[key], list):
                fields[key].append(value)
            else:
                fields[key] = [fields[key], value]
        return fields

    def dedupe_key(
        self, request: RawRequest, payload: Any, options: Mapping[str, Any] = NO_OPTIONS
    ) -> str | None:
        return _lookup(request, payload, options, "dedupe")

    def dedupes_body(self, options: Mapping[str, Any] = NO_OPTIONS) -> bool:
        return bool(options.get("dedupe_header"))  # a header's id is not signed

    def event_type(
        self, request: RawRequest, payload: Any, options: Mapping[str, Any] = NO_OPTIONS
    ) -> str | None:
        return _lookup(request, payload, options, "event_type")

    def sign(
        self, body: bytes, secret: str, now: float, options: Mapping[str, Any] = NO_OPTIONS
    ) -> dict[str, str]:
        auth = auth_settings(secret, options)
        headers = {"Content-Type": str(options.get("content_type") or "application/json")}
        if options.get("dedupe_header"):
            headers[str(options["dedupe_header"])] = str(uuid.uuid4())
        if auth.mode == "bearer":
            headers["Authorization"] = f"Bearer {secret}"
        elif auth.mode == "basic":
            headers["Authorization"] = "Basic " + base64.b64encode(auth.credentials).decode()
        elif auth.mode == "hmac":
            digest = hmac_digest(auth.credentials, body, auth.algorithm)
            encoded = digest.hex() if auth.encoding == "hex" else base64.b64encode(digest).decode()
            headers[auth.header] = auth.prefix + encoded
        return headers
