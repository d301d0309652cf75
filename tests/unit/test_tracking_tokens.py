"""Tracking tokens: compact, bound to their kind and email, and nothing else parses."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookhub.core.crypto import Keyring
from hookhub.core.tracking import TrackingRef, TrackingSigner, tracking_signer

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
signer = TrackingSigner(KEY)


def test_tokens_round_trip_and_are_short_url_safe_text() -> None:
    open_token = signer.token("o", 123)
    click_token = signer.token("c", 123, 4)
    unsub_token = signer.token("u", 2**63)
    assert signer.parse("o", open_token) == TrackingRef("o", 123, 0)
    assert signer.parse("c", click_token) == TrackingRef("c", 123, 4)
    assert signer.parse("u", unsub_token) == TrackingRef("u", 2**63, 0)
    for token in (open_token, click_token, unsub_token):
        assert len(token) <= 32
        assert token.isascii()
        assert all(c.isalnum() or c in "-_" for c in token)
    assert signer.token("o", 123) == open_token  # deterministic: the same link in every send


def test_a_token_of_one_kind_is_not_a_token_of_another() -> None:
    assert signer.parse("u", signer.token("o", 5)) is None
    assert signer.parse("o", signer.token("u", 5)) is None
    assert signer.parse("c", signer.token("o", 5)) is None
    assert signer.parse("x", signer.token("o", 5)) is None


def test_another_key_does_not_verify_and_previous_keys_still_do() -> None:
    token = TrackingSigner(OTHER_KEY).token("c", 9, 1)
    assert signer.parse("c", token) is None
    assert TrackingSigner(KEY, previous=[OTHER_KEY]).parse("c", token) == TrackingRef("c", 9, 1)


def test_every_single_change_is_refused() -> None:
    token = signer.token("c", 77, 3)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for position in range(len(token)):
        for replacement in alphabet:
            if replacement != token[position]:
                changed = token[:position] + replacement + token[position + 1 :]
                assert signer.parse("c", changed) is None, changed


@pytest.mark.parametrize(
    "token",
    ["", "=", "abc", "é" * 20, "\x00" * 31, "A" * 5000, None, 17, b"bytes", "a/b", "a b", "..",
     signer.token("c", 1, 1)[:-1], signer.token("c", 1, 1) + "A", signer.token("c", 1, 1) + "=",
     signer.token("o", 1).upper()],
)  # fmt: skip
def test_garbage_is_none_never_an_exception(token: object) -> None:
    assert signer.parse("c", token) is None
    assert signer.parse("o", token) is None


@given(st.text(max_size=80))
def test_random_text_never_parses_nor_raises(token: str) -> None:
    assert signer.parse("o", token) is None


@given(st.binary(max_size=40))
def test_random_well_formed_base64_never_parses(raw: bytes) -> None:
    token = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    assert signer.parse("c", token) is None


def test_bad_arguments_to_make_a_token_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="kind"):
        signer.token("z", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="link"):
        signer.token("c", 1, 70000)
    with pytest.raises(ValueError, match="link"):
        signer.token("o", 1, 2)
    with pytest.raises(ValueError, match="email id"):
        signer.token("o", -1)
    with pytest.raises(ValueError, match="16 bytes"):
        TrackingSigner(b"short")


def test_the_signer_key_comes_from_the_secret_key_but_is_not_the_sealing_key() -> None:
    keyring = Keyring(KEY)
    from_keyring = tracking_signer(keyring)
    token = from_keyring.token("o", 11)
    assert tracking_signer(Keyring(KEY)).parse("o", token) == TrackingRef("o", 11, 0)
    assert signer.parse("o", token) is None  # the master key itself does not sign
    assert tracking_signer(Keyring(OTHER_KEY)).parse("o", token) is None
    rotated = tracking_signer(Keyring(OTHER_KEY, previous=[KEY]))
    assert rotated.parse("o", token) == TrackingRef("o", 11, 0)
    assert rotated.token("o", 11) != token
    with pytest.raises(ValueError, match="reserved"):
        keyring.subkeys(b"hookhub secrets at rest v1")
