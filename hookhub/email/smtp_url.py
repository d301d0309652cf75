"""``HOOKHUB_SMTP_URL``: where mail goes, parsed into an :class:`SmtpConfig`.

    smtp://user:pass@host:587           STARTTLS when the server offers it (``?tls=required``
                                        insists: no STARTTLS, no mail)
    smtps://user:pass@host:465          TLS from the first byte (implicit TLS)
    smtp://host:25?tls=off              plain text, never STARTTLS
    ...?verify=off                      accept any certificate (self-signed development
                                        servers only: it lets anyone in the path read the mail)
    ...?helo=mail.example.com           the name we greet with (default: this host's name)

The user name and password are percent-decoded (``p%40ss`` is ``p@ss``). Without TLS the
password is only sent when ``tls=off`` says plain text is meant. Default ports: 25 for
``smtp``, 465 for ``smtps``.

This module must never put the password into an error, a ``repr`` or a description.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["InvalidSmtpUrl", "SmtpConfig", "TlsMode", "parse_smtp_url"]

TlsMode = Literal["opportunistic", "required", "implicit", "off"]

_TLS_WORDS: dict[str, TlsMode] = {
    "opportunistic": "opportunistic",
    "auto": "opportunistic",
    "required": "required",
    "starttls": "required",
    "off": "off",
    "none": "off",
}
_ON_OFF = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}
_TLS_DESCRIPTIONS: dict[TlsMode, str] = {
    "opportunistic": "STARTTLS when offered",
    "required": "STARTTLS required",
    "implicit": "implicit TLS",
    "off": "no TLS",
}


class InvalidSmtpUrl(ValueError):
    """``HOOKHUB_SMTP_URL`` does not say where to send mail; the message names what is wrong."""


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """Where and how to connect. ``repr`` and ``str`` show the user name at most."""

    host: str
    port: int
    tls: TlsMode = "opportunistic"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    verify: bool = True
    helo: str | None = None

    def __post_init__(self) -> None:
        if self.password is not None and self.username is None:
            raise InvalidSmtpUrl("HOOKHUB_SMTP_URL has a password but no user name")

    @property
    def uses_tls(self) -> bool:
        return self.tls != "off"

    def describe(self) -> str:
        """``smtp://user@host:587 (STARTTLS when offered)``: safe for logs."""
        scheme = "smtps" if self.tls == "implicit" else "smtp"
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        details = _TLS_DESCRIPTIONS[self.tls]
        if self.uses_tls and not self.verify:
            details += ", certificate NOT verified"
        return f"{scheme}://{user}{host}:{self.port} ({details})"

    __str__ = describe

    def ssl_context(self) -> ssl.SSLContext:
        """A client context: the system's trusted CAs and the host name checked, unless
        ``verify=off``."""
        context = ssl.create_default_context()
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def parse_smtp_url(url: str) -> SmtpConfig:
    """The configuration ``url`` names; :class:`InvalidSmtpUrl` (never echoing it) if none."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidSmtpUrl(
            "HOOKHUB_SMTP_URL is not a URL with a valid host and port"
            " (expected smtp://user:pass@host:587, smtps://user:pass@host:465"
            " or smtp://host:25?tls=off)"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps"):
        raise InvalidSmtpUrl(
            "HOOKHUB_SMTP_URL must start with smtp:// or smtps://"
            + (f" (not {scheme}://)" if _showable(scheme, None) else "")
        )
    host = parts.hostname
    if not host:
        raise InvalidSmtpUrl("HOOKHUB_SMTP_URL names no host (smtp://host:port)")
    if parts.path not in ("", "/") or parts.fragment:
        raise InvalidSmtpUrl("HOOKHUB_SMTP_URL takes no path: smtp://user:pass@host:port?options")
    if port == 0:
        raise InvalidSmtpUrl("HOOKHUB_SMTP_URL: port 0 is not a port")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and not username:
        raise InvalidSmtpUrl("HOOKHUB_SMTP_URL has a password but no user name")
    for what, credential in (("user name", username), ("password", password)):
        if credential is not None and any(c in credential for c in "\r\n\0"):
            raise InvalidSmtpUrl(f"HOOKHUB_SMTP_URL: the {what} has a control character")
    tls: TlsMode = "implicit" if scheme == "smtps" else "opportunistic"
    verify = True
    helo: str | None = None
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        name, value = key.lower(), value.strip()
        if name == "tls":
            if scheme == "smtps":
                raise InvalidSmtpUrl("HOOKHUB_SMTP_URL: smtps:// is always TLS; drop ?tls=")
            if value.lower() not in _TLS_WORDS:
                raise InvalidSmtpUrl("HOOKHUB_SMTP_URL: tls= takes opportunistic, required or off")
            tls = _TLS_WORDS[value.lower()]
        elif name == "verify":
            if value.lower() not in _ON_OFF:
                raise InvalidSmtpUrl("HOOKHUB_SMTP_URL: verify= takes on or off")
            verify = _ON_OFF[value.lower()]
        elif name == "helo":
            if not value or any(c.isspace() or not c.isprintable() for c in value):
                raise InvalidSmtpUrl("HOOKHUB_SMTP_URL: helo= takes a host name")
            helo = value
        else:
            raise InvalidSmtpUrl(
                "HOOKHUB_SMTP_URL: unknown option"
                + (f" {name!r}" if _showable(name, password) else "")
                + " (known: tls, verify, helo)"
            )
    return SmtpConfig(
        host=host,
        port=port if port is not None else (465 if scheme == "smtps" else 25),
        tls=tls,
        username=username,
        password=password,
        verify=verify,
        helo=helo,
    )


def _showable(word: str, password: str | None) -> bool:
    """Whether a piece of the URL may be quoted in an error (never anything like a secret)."""
    return word.isidentifier() and len(word) < 20 and not (password and word in password)
