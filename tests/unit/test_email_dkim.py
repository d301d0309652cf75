"""DKIM: a signed message verifies against the published key; settings are all or nothing."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hookhub.email.dkim import DkimSigner, load_dkim_signer
from hookhub.email.mime import Address, OutgoingMessage, build_message
from hookhub.errors import DkimKeyError

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey, form: serialization.PrivateFormat) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, form, serialization.NoEncryption())


def dns_record(key: rsa.RSAPrivateKey) -> bytes:
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def dnsfunc_for(name: bytes, record: bytes):  # type: ignore[no-untyped-def]
    def lookup(queried: bytes, timeout: int = 5) -> bytes | None:
        return record if queried == name else None

    return lookup


def built() -> bytes:
    return build_message(
        OutgoingMessage(
            message_id="<1.abc@mail.example.com>",
            sender=Address("news@example.com", "Zoë News"),
            to=Address("ann@example.org"),
            subject="Grüße",
            html="<p>Hi</p>\n",
            text="Hi\n.dot\n",
            date=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            list_unsubscribe="https://hooks.example.com/t/u/x",
        )
    )


@pytest.mark.parametrize(
    "form", [serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8]
)
def test_a_signed_message_verifies_with_the_published_key(
    form: serialization.PrivateFormat,
) -> None:
    signer = DkimSigner("example.com", "hh2026", pem(KEY, form))
    signed = signer.sign(built())
    assert signed.startswith(b"DKIM-Signature: ")
    assert signed.endswith(built())
    header = signed[: -len(built())].decode()
    assert "c=relaxed/relaxed" in header
    assert "d=example.com" in header
    assert "s=hh2026" in header
    signed_names = header.split("h=")[1].split(";")[0].replace("\r\n", "").replace(" ", "")
    for name in ("from", "to", "subject", "date", "message-id", "mime-version", "content-type",
                 "list-unsubscribe", "list-unsubscribe-post"):  # fmt: skip
        assert name in signed_names.split(":")
    lookup = dnsfunc_for(b"hh2026._domainkey.example.com.", dns_record(KEY))
    assert dkim.verify(signed, dnsfunc=lookup)
    tampered = signed.replace(b"Subject: =?utf-8?b?", b"Subject: =?utf-8?B?")
    assert tampered != signed
    assert not dkim.verify(tampered, dnsfunc=lookup)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert not dkim.verify(
        signed, dnsfunc=dnsfunc_for(b"hh2026._domainkey.example.com.", dns_record(other))
    )


def test_the_loader_takes_all_three_settings_or_none(tmp_path: Path) -> None:
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(pem(KEY, serialization.PrivateFormat.PKCS8))
    assert load_dkim_signer(None, None, None) is None
    loaded = load_dkim_signer("example.com", "s1", key_file)
    assert loaded is not None
    assert loaded.selector == "s1"
    with pytest.raises(DkimKeyError, match="all of"):
        load_dkim_signer("example.com", None, key_file)
    with pytest.raises(DkimKeyError, match="Cannot read"):
        load_dkim_signer("example.com", "s1", tmp_path / "missing.pem")


@pytest.mark.parametrize(
    "key",
    [
        b"not a key",
        b"-----BEGIN PRIVATE KEY-----\nMIIBroken\n-----END PRIVATE KEY-----\n",
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    ],
)
def test_unusable_keys_are_refused_without_showing_them(key: bytes) -> None:
    with pytest.raises(DkimKeyError) as caught:
        DkimSigner("example.com", "s1", key)
    assert "PRIVATE" not in caught.value.message
    assert "MII" not in caught.value.message
    assert "PRIVATE" not in repr(
        DkimSigner("example.com", "s1", pem(KEY, serialization.PrivateFormat.PKCS8))
    )
