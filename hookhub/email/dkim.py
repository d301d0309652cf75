"""Optional DKIM signing of built messages (RSA-SHA256, relaxed/relaxed) with ``dkimpy``.

:func:`load_dkim_signer` takes the three settings (``HOOKHUB_DKIM_DOMAIN``, ``_SELECTOR``,
``_KEY_FILE``): none given, no signing; some but not all, or a key that does not load, a
:class:`DkimKeyError` at start rather than unsigned mail later. The signature covers the headers
a receiver judges a message by (From, To, Subject, Date, Message-ID, the MIME headers, Reply-To
and List-Unsubscribe(-Post)); a header listed but absent is signed as absent, so nobody can add it.

This module must never log or put the private key in an error message.
"""

from __future__ import annotations

from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hookhub.errors import DkimKeyError

SIGNED_HEADERS = (
    b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"mime-version",
    b"content-type", b"content-transfer-encoding", b"list-unsubscribe", b"list-unsubscribe-post",
)  # fmt: skip


def _pkcs1(private_key_pem: bytes) -> bytes:
    """The key as PKCS#1 PEM (what dkimpy reads), from PKCS#1 or PKCS#8 PEM."""
    try:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise DkimKeyError("The DKIM key is not an unencrypted PEM private key.") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise DkimKeyError("The DKIM key must be an RSA key.")
    if key.key_size < 1024:
        raise DkimKeyError("The DKIM key must have at least 1024 bits (2048 recommended).")
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


class DkimSigner:
    """Signs messages for ``domain`` with the key published at ``selector._domainkey.domain``."""

    def __init__(self, domain: str, selector: str, private_key_pem: bytes | str) -> None:
        pem = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
        self.domain = domain.strip().lower()
        self.selector = selector.strip()
        if not self.domain or not self.selector:
            raise DkimKeyError("DKIM signing needs a domain and a selector.")
        self._key = _pkcs1(pem)

    def __repr__(self) -> str:
        return f"DkimSigner(domain={self.domain!r}, selector={self.selector!r})"

    def sign(self, message: bytes) -> bytes:
        """``message`` with its DKIM-Signature header prepended."""
        try:
            header: bytes = dkim.sign(
                message,
                self.selector.encode("ascii"),
                self.domain.encode("idna"),
                self._key,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=list(SIGNED_HEADERS),
            )
        except dkim.DKIMException as exc:
            raise DkimKeyError(f"DKIM signing failed: {type(exc).__name__}.") from exc
        return header + message


def load_dkim_signer(
    domain: str | None, selector: str | None, key_file: str | Path | None
) -> DkimSigner | None:
    """The signer the three DKIM settings describe; None when none is set."""
    given = [value for value in (domain, selector, key_file) if value]
    if not given:
        return None
    if len(given) != 3 or domain is None or selector is None or key_file is None:
        raise DkimKeyError(
            "DKIM signing needs all of HOOKHUB_DKIM_DOMAIN, HOOKHUB_DKIM_SELECTOR and"
            " HOOKHUB_DKIM_KEY_FILE (or none of them)."
        )
    try:
        pem = Path(key_file).read_bytes()
    except OSError as exc:
        raise DkimKeyError(f"Cannot read the DKIM key file {key_file}: {exc.strerror}.") from exc
    return DkimSigner(domain, selector, pem)
