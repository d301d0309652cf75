"""Sealing secrets at rest: round trips, the purpose bound to each value, key ids, bad keys."""

from __future__ import annotations

import base64
import itertools

import pytest

from hookhub.core.crypto import (
    PREFIX,
    CryptoError,
    Keyring,
    format_key,
    is_sealed,
    key_id_of,
    new_key,
    parse_key,
)

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))


def test_a_sealed_value_opens_to_the_plaintext_and_hides_it() -> None:
    ring = Keyring(KEY)
    sealed = ring.seal("whsec_the-secret", "endpoints.secret")
    assert sealed.startswith(f"{PREFIX}{ring.current.id}:")
    assert "the-secret" not in sealed
    assert is_sealed(sealed)
    assert key_id_of(sealed) == ring.current.id
    assert ring.open(sealed, "endpoints.secret") == "whsec_the-secret"


def test_each_seal_uses_a_fresh_nonce() -> None:
    ring = Keyring(KEY)
    assert ring.seal("same", "p") != ring.seal("same", "p")


def test_the_nonce_comes_from_the_given_randomness() -> None:
    counter = itertools.count()
    ring = Keyring(KEY, random=lambda n: bytes([next(counter)]) * n)
    first, second = ring.seal("x", "p"), ring.seal("x", "p")
    raw = base64.urlsafe_b64decode(first.rsplit(":", 1)[1])
    assert raw[:12] == b"\x00" * 12
    assert first != second


def test_a_value_does_not_open_for_another_purpose() -> None:
    ring = Keyring(KEY)
    sealed = ring.seal("token", "endpoints.auth")
    with pytest.raises(CryptoError, match="does not open"):
        ring.open(sealed, "inbound_webhooks.secret")


def test_a_tampered_value_does_not_open() -> None:
    ring = Keyring(KEY)
    sealed = ring.seal("token", "p")
    body = bytearray(base64.urlsafe_b64decode(sealed.rsplit(":", 1)[1]))
    body[-1] ^= 1
    tampered = sealed.rsplit(":", 1)[0] + ":" + base64.urlsafe_b64encode(bytes(body)).decode()
    with pytest.raises(CryptoError, match="does not open"):
        ring.open(tampered, "p")


def test_previous_keys_open_and_only_the_current_one_seals() -> None:
    old = Keyring(OTHER).seal("kept", "p")
    ring = Keyring(KEY, [OTHER])
    assert ring.open(old, "p") == "kept"
    assert key_id_of(ring.seal("new", "p")) == ring.current.id
    assert ring.ids == [ring.current.id, Keyring(OTHER).current.id]


def test_an_unknown_key_is_named_but_no_key_is_shown() -> None:
    sealed = Keyring(OTHER).seal("x", "p")
    with pytest.raises(CryptoError) as caught:
        Keyring(KEY).open(sealed, "p")
    message = str(caught.value)
    assert Keyring(OTHER).current.id in message
    assert "HOOKHUB_SECRET_KEY" in message
    assert format_key(KEY) not in message
    assert format_key(OTHER) not in message


def test_key_ids_are_stable_short_and_distinct() -> None:
    key_id = Keyring(KEY).current.id
    assert key_id == Keyring(KEY).current.id
    assert key_id != Keyring(OTHER).current.id
    assert len(key_id) == 12
    int(key_id, 16)


def test_keys_parse_from_standard_and_urlsafe_base64() -> None:
    raw = bytes([251, 255] * 16)  # encodes with + and / (standard) or - and _ (URL-safe)
    assert parse_key(base64.b64encode(raw).decode()) == raw
    assert parse_key(base64.urlsafe_b64encode(raw).decode().rstrip("=") + "\n") == raw
    assert len(parse_key(new_key())) == 32


@pytest.mark.parametrize("text", ["", "not base64!", base64.b64encode(b"short").decode()])
def test_malformed_keys_are_refused(text: str) -> None:
    with pytest.raises(CryptoError):
        parse_key(text)


def test_plaintext_is_not_taken_for_a_sealed_value() -> None:
    assert not is_sealed("whsec_abc")
    assert key_id_of('{"type": "bearer"}') is None
    with pytest.raises(CryptoError, match="not sealed"):
        Keyring(KEY).open("whsec_abc", "p")
