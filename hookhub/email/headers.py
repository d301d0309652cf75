"""RFC 5322 header fields for outgoing email: addresses, encoded words, folding, custom headers.

Everything here returns ASCII text ready to put on the wire (folded with CRLF + space), or
raises :class:`HeaderInvalid` / :class:`ValidationFailed` naming what is refused. Non-ASCII
display names and text become RFC 2047 encoded words; non-ASCII domains are IDNA-encoded; a
non-ASCII local part would need SMTPUTF8, which Hookhub does not speak, and is refused. This
module must never let a CR or LF from its input reach the output (that is header injection).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from hookhub.errors import HeaderInvalid, ValidationFailed

MAX_LINE = 78
_ATEXT_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*\Z")
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}\Z")
_DOMAIN_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
_FIELD_NAME = re.compile(r"[!-9;-~]{1,76}\Z")
_PLAIN_TEXT = re.compile(r"[ -~]*\Z")  # printable ASCII and space
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+\Z")
_ENCODED_CHUNK = 45  # bytes per encoded word: 60 base64 characters, 72 with the markers

# Headers Hookhub writes itself (or that only a relay may add): a custom header cannot replace them.
STRUCTURAL = frozenset(
    {
        "bcc", "cc", "content-disposition", "content-transfer-encoding", "content-type", "date",
        "dkim-signature", "from", "list-unsubscribe", "list-unsubscribe-post", "message-id",
        "mime-version", "received", "reply-to", "resent-from", "resent-to", "return-path",
        "sender", "subject", "to",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Address:
    """A mailbox: the address and an optional display name."""

    email: str
    name: str | None = None


def ascii_address(email: str) -> str:
    """``email`` on the wire: ASCII local part, IDNA domain; ValidationFailed naming it if not."""
    local, at, domain = email.rpartition("@")
    if (
        not at
        or not _LOCAL_PART.match(local)
        or ".." in local
        or local.startswith(".")
        or local.endswith(".")
    ):
        if at and local and not local.isascii() and "\n" not in local and "\r" not in local:
            raise ValidationFailed(
                f"{email!r} has a non-ASCII local part, which needs SMTPUTF8 (not supported).",
                details={"field": "email", "email": email},
            )
        raise ValidationFailed(
            f"{email!r} is not a valid email address.", details={"field": "email", "email": email}
        )
    try:
        ascii_domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError as exc:
        raise ValidationFailed(
            f"{email!r} has a domain that cannot be IDNA-encoded.",
            details={"field": "email", "email": email},
        ) from exc
    labels = ascii_domain.rstrip(".").split(".")
    if len(ascii_domain) > 253 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise ValidationFailed(
            f"{email!r} is not a valid email address.", details={"field": "email", "email": email}
        )
    return f"{local}@{ascii_domain}"


def encoded_words(text: str) -> list[str]:
    """``text`` as RFC 2047 base64 encoded words, split on character boundaries."""
    words: list[str] = []
    chunk = bytearray()
    for char in text:
        data = char.encode("utf-8", "surrogatepass")
        if len(chunk) + len(data) > _ENCODED_CHUNK:
            words.append(f"=?utf-8?b?{base64.b64encode(chunk).decode()}?=")
            chunk.clear()
        chunk += data
    if chunk or not words:
        words.append(f"=?utf-8?b?{base64.b64encode(chunk).decode()}?=")
    return words


def _needs_encoding(text: str) -> bool:
    return not _PLAIN_TEXT.match(text) or "=?" in text


def fold(name: str, words: Iterable[str]) -> str:
    """``Name: w1 w2 ...``, folded (CRLF + space) before a word when a line would pass 78."""
    words = tuple(words)
    single = f"{name}: {' '.join(words)}"
    if len(single) <= MAX_LINE:
        return single
    lines: list[str] = []
    line = f"{name}:"
    for index, word in enumerate(words):
        if index and len(line) + 1 + len(word) > MAX_LINE:
            lines.append(line)
            line = " " + word
        else:
            line = f"{line} {word}"
    lines.append(line)
    return "\r\n".join(lines)


def unstructured(name: str, value: str) -> str:
    """An unstructured header (Subject, custom ones): spaces collapsed, encoded if needed."""
    text = " ".join(value.split())
    words = text.split(" ") if text else [""]
    if _needs_encoding(text) or any(len(word) > 900 for word in words):
        return fold(name, encoded_words(text))
    return fold(name, words)


def display_name(name: str) -> str:
    """A display name as a phrase: atoms, a quoted string, or atoms and encoded words.

    With non-ASCII text, plain atoms stay plain and each run of other words becomes encoded
    words (spaces inside): RFC 2047 decoders drop the whitespace between two encoded words,
    while Python's address parser keeps it, so a name splits into several encoded words only
    when a run passes 45 bytes, and then a space may double in Python's reading.
    """
    text = " ".join(name.split())
    if not _needs_encoding(text):
        if _ATEXT_PHRASE.match(text):
            return text
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    out: list[str] = []
    run: list[str] = []
    for word in text.split(" "):
        if _ATOM.match(word) and "=?" not in word:
            if run:
                out += encoded_words(" ".join(run))
                run = []
            out.append(word)
        else:
            run.append(word)
    if run:
        out += encoded_words(" ".join(run))
    return " ".join(out)


@lru_cache(maxsize=1024)  # senders and reply-to addresses repeat in every message of a batch
def mailbox_words(address: Address) -> tuple[str, ...]:
    """``Name <addr>`` as foldable words."""
    email = ascii_address(address.email)
    if not address.name or not address.name.strip():
        return (email,)
    return (*display_name(address.name).split(" "), f"<{email}>")


def address_header(name: str, addresses: Iterable[Address]) -> str:
    words: list[str] = []
    for address in addresses:
        if words:
            words[-1] += ","
        words += mailbox_words(address)
    if not words:
        raise ValidationFailed(f"{name} needs at least one address.", details={"field": name})
    return fold(name, words)


def custom_headers(headers: Mapping[str, str]) -> list[str]:
    """Caller-given headers as folded lines; HeaderInvalid naming the first one refused."""
    seen: set[str] = set()
    lines: list[str] = []
    for name, value in headers.items():
        lowered = name.lower() if isinstance(name, str) else ""
        if not isinstance(name, str) or not _FIELD_NAME.match(name):
            raise HeaderInvalid(
                f"Header name {name!r} is not a valid field name.", details={"header": str(name)}
            )
        if lowered in STRUCTURAL:
            raise HeaderInvalid(
                f"Header {name} is set by Hookhub and cannot be given.", details={"header": name}
            )
        if lowered in seen:
            raise HeaderInvalid(f"Header {name} is given twice.", details={"header": name})
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise HeaderInvalid(
                f"Header {name} has a line break or NUL in its value.", details={"header": name}
            )
        if len(value) > 998:
            raise HeaderInvalid(f"Header {name}'s value is too long.", details={"header": name})
        seen.add(lowered)
        lines.append(unstructured(name, value))
    return lines
