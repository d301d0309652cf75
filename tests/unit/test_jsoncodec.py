"""The one JSON codec: refuses what JSON cannot represent exactly instead of altering it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from hookhub.core import jsoncodec
from hookhub.errors import InvalidJSON, ValidationFailed


def test_round_trip_keeps_values() -> None:
    document = {"a": [1, 2.5, True, None, "ü\u0000"], "b": {"c": -(2**63)}}
    assert jsoncodec.loads(jsoncodec.dumps(document)) == document


def test_output_is_compact_utf8() -> None:
    assert jsoncodec.dumps({"k": "é", "n": [1, 2]}) == '{"k":"é","n":[1,2]}'.encode()


def test_datetimes_are_utc_with_z() -> None:
    moment = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
    assert jsoncodec.dumps({"at": moment}) == b'{"at":"2026-01-15T09:30:00Z"}'


@pytest.mark.parametrize("data", [b"{", b"", b"{'a': 1}", b"[1,]", b"\xff", "NaN"])
def test_invalid_json_is_invalid_json_error(data: bytes | str) -> None:
    with pytest.raises(InvalidJSON) as caught:
        jsoncodec.loads(data)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "value",
    [
        2**64,
        -(2**64),
        {"deep": 10**30},
        "\ud800",
        {"k": "lone \udfff surrogate"},
        object(),
    ],
)
def test_values_json_cannot_hold_are_refused(value: Any) -> None:
    with pytest.raises(ValidationFailed):
        jsoncodec.dumps(value)


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        {"x": float("inf")},
        [None, [float("-inf")]],
        {"n": None, "v": (1.0, float("nan"))},
    ],
)
def test_nan_and_infinities_are_refused_not_written_as_null(value: Any) -> None:
    with pytest.raises(ValidationFailed, match="finite"):
        jsoncodec.dumps(value)


def test_null_alone_is_fine() -> None:
    assert jsoncodec.dumps({"x": None, "y": "null"}) == b'{"x":null,"y":"null"}'


def test_nesting_past_the_limit_is_refused() -> None:
    nested: Any = 1
    for _ in range(300):
        nested = [nested]
    with pytest.raises(ValidationFailed):
        jsoncodec.dumps(nested)


def test_check_finite_walks_nested_documents() -> None:
    jsoncodec.check_finite({"a": [1.5, {"b": -0.0}]})
    with pytest.raises(ValidationFailed):
        jsoncodec.check_finite({"a": [1.5, {"b": float("nan")}]})


def test_isoformat_is_utc_milliseconds_with_z() -> None:
    moment = datetime(2026, 11, 28, 4, 22, 28, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert jsoncodec.isoformat(moment) == "2026-11-28T03:22:28.123Z"
