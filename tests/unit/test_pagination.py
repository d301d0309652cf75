"""Opaque keyset cursors: what the API hands out decodes back; anything else is a clear 400."""

from __future__ import annotations

import base64

import pytest

from hookhub.core.pagination import (
    MAX_LIMIT,
    check_limit,
    decode_cursor,
    decode_text_cursor,
    encode_cursor,
)
from hookhub.errors import BadRequest


@pytest.mark.parametrize("key", [0, 1, 987654321, 2**63 - 1])
def test_integer_cursor_round_trips(key: int) -> None:
    assert decode_cursor(encode_cursor(key)) == key


@pytest.mark.parametrize("key", ["msg_01abc", "a:b:c", "ünïcode"])
def test_text_cursor_round_trips(key: str) -> None:
    assert decode_text_cursor(encode_cursor(key)) == key


def test_cursor_is_url_safe_without_padding() -> None:
    cursor = encode_cursor("msg_??>>")
    assert "=" not in cursor
    assert all(c.isalnum() or c in "-_" for c in cursor)


@pytest.mark.parametrize("cursor", [None, ""])
def test_no_cursor_means_first_page(cursor: str | None) -> None:
    assert decode_cursor(cursor) is None
    assert decode_text_cursor(cursor) is None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64!",
        "@@@@",
        _b64(b"\xff\xfe"),
        _b64(b"i:abc"),
        _b64(b"i:-1"),
        _b64(f"i:{2**63}".encode()),
        _b64(b"x:1"),
        _b64(b"1"),
        encode_cursor("text"),
    ],
)
def test_foreign_integer_cursor_is_bad_request(cursor: str) -> None:
    with pytest.raises(BadRequest) as caught:
        decode_cursor(cursor)
    assert caught.value.details == {"field": "cursor"}


@pytest.mark.parametrize("cursor", [encode_cursor(5), _b64(b"s:"), "%%%"])
def test_foreign_text_cursor_is_bad_request(cursor: str) -> None:
    with pytest.raises(BadRequest):
        decode_text_cursor(cursor)


@pytest.mark.parametrize("limit", [1, 50, MAX_LIMIT])
def test_limits_in_range_are_accepted(limit: int) -> None:
    assert check_limit(limit) == limit


@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1])
def test_limits_out_of_range_are_refused(limit: int) -> None:
    with pytest.raises(BadRequest, match="limit"):
        check_limit(limit)


def test_text_cursor_naming_a_nul_is_refused() -> None:
    with pytest.raises(BadRequest):
        decode_text_cursor(_b64(b"s:msg\x00"))
