"""Contact data rules: email normalisation, ext_id, attribute names, typed values, event names."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from hookhub.core.contacts import (
    MAX_STRING_LENGTH,
    AttributeType,
    check_event_name,
    check_value,
    coerce_value,
    infer_type,
    normalize_attribute_name,
    normalize_email,
    normalize_ext_id,
)
from hookhub.errors import ValidationFailed


def test_email_is_trimmed_and_lower_cased() -> None:
    assert normalize_email("  Ada.Lovelace@Example.COM \n") == "ada.lovelace@example.com"


@pytest.mark.parametrize(
    "raw", ["", "   ", "ada", "ada@", "@example.com", "ada@@example.com", "a b@example.com"]
)
def test_invalid_email_is_refused_naming_the_field(raw: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalize_email(raw)
    assert caught.value.details == {"field": "email"}


@pytest.mark.parametrize("raw", [None, 42, ["a@example.com"], {"email": "a@example.com"}])
def test_email_that_is_not_a_string_is_refused(raw: Any) -> None:
    with pytest.raises(ValidationFailed, match="email must be a string"):
        normalize_email(raw)


def test_ext_id_is_trimmed_and_integers_become_text() -> None:
    assert normalize_ext_id("  cus_123 ") == "cus_123"
    assert normalize_ext_id(42) == "42"
    assert normalize_ext_id(None) is None


@pytest.mark.parametrize("raw", ["", "   ", "x" * 256, True, 1.5, ["a"]])
def test_bad_ext_id_is_refused(raw: Any) -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalize_ext_id(raw)
    assert caught.value.details == {"field": "ext_id"}


def test_attribute_names_are_case_insensitive_and_kept_upper_case() -> None:
    assert normalize_attribute_name("firstName") == "FIRSTNAME"
    assert normalize_attribute_name("plan_2") == "PLAN_2"


@pytest.mark.parametrize("raw", ["", "2fa", "first name", "é", "a" * 65, "x-y"])
def test_bad_attribute_names_are_refused(raw: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalize_attribute_name(raw)
    assert caught.value.details == {"attribute": raw}


@pytest.mark.parametrize("name", ["order_paid", "Signed-Up", "a", "x" * 255, "2024_sale"])
def test_event_names_of_letters_digits_underscores_and_dashes_are_accepted(name: str) -> None:
    assert check_event_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 256, "has space", "dot.ted", "ümlaut", 12, None])
def test_other_event_names_are_refused(name: Any) -> None:
    with pytest.raises(ValidationFailed, match="event_name"):
        check_event_name(name)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (True, AttributeType.BOOLEAN),
        (False, AttributeType.BOOLEAN),
        (3, AttributeType.NUMBER),
        (2.5, AttributeType.NUMBER),
        ("gold", AttributeType.STRING),
        ("2024-01-31", AttributeType.STRING),
    ],
)
def test_first_value_decides_an_undeclared_attribute_type(value: Any, kind: AttributeType) -> None:
    assert infer_type("PLAN", value) is kind


@pytest.mark.parametrize("value", [[1, 2], {"a": 1}])
def test_value_of_no_attribute_type_is_refused_naming_the_attribute(value: Any) -> None:
    with pytest.raises(ValidationFailed) as caught:
        infer_type("TAGS", value)
    assert "TAGS" in caught.value.message
    assert caught.value.details["attribute"] == "TAGS"


@pytest.mark.parametrize(
    ("kind", "value", "stored"),
    [
        (AttributeType.STRING, "gold", "gold"),
        (AttributeType.NUMBER, 42, 42),
        (AttributeType.NUMBER, -0.5, -0.5),
        (AttributeType.NUMBER, 2**63 - 1, 2**63 - 1),
        (AttributeType.BOOLEAN, False, False),
        (AttributeType.DATE, "2024-02-29", "2024-02-29"),
        (AttributeType.DATE, "2024-02-29T23:30:00Z", "2024-02-29"),
        (AttributeType.DATE, " 2024-02-29 ", "2024-02-29"),
    ],
)
def test_value_of_the_declared_type_is_stored(kind: AttributeType, value: Any, stored: Any) -> None:
    assert check_value("X", kind, value) == stored


def test_none_means_remove_for_every_type() -> None:
    for kind in AttributeType:
        assert check_value("X", kind, None) is None


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (AttributeType.STRING, 3),
        (AttributeType.STRING, True),
        (AttributeType.STRING, "x" * (MAX_STRING_LENGTH + 1)),
        (AttributeType.NUMBER, "3"),
        (AttributeType.NUMBER, True),
        (AttributeType.NUMBER, float("nan")),
        (AttributeType.NUMBER, float("inf")),
        (AttributeType.NUMBER, 2**63),
        (AttributeType.NUMBER, -(2**63)),
        (AttributeType.BOOLEAN, "true"),
        (AttributeType.BOOLEAN, 1),
        (AttributeType.DATE, "31/01/2024"),
        (AttributeType.DATE, "2024-02-30"),
        (AttributeType.DATE, 1706659200),
        (AttributeType.STRING, [1]),
    ],
)
def test_type_mismatch_is_refused_naming_the_attribute(kind: AttributeType, value: Any) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_value("BIRTHDAY", kind, value)
    assert "BIRTHDAY" in caught.value.message
    assert caught.value.details["attribute"] == "BIRTHDAY"


def test_mismatch_message_shortens_huge_values() -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_value("AGE", AttributeType.NUMBER, "9" * 5000)
    assert len(caught.value.message) < 200


@pytest.mark.parametrize(
    ("kind", "value", "stored"),
    [
        (AttributeType.NUMBER, " 42 ", 42),
        (AttributeType.NUMBER, "42.0", 42.0),
        (AttributeType.NUMBER, "-1.5", -1.5),
        (AttributeType.BOOLEAN, "Yes", True),
        (AttributeType.BOOLEAN, "off", False),
        (AttributeType.STRING, 12, "12"),
        (AttributeType.STRING, "  padded ", "padded"),
        (AttributeType.DATE, "2024-01-31", "2024-01-31"),
    ],
)
def test_coercion_converts_unambiguous_text_and_numbers(
    kind: AttributeType, value: Any, stored: Any
) -> None:
    assert coerce_value("X", kind, value) == stored


def test_coercion_turns_unix_timestamps_into_dates() -> None:
    assert coerce_value("SIGNUP", AttributeType.DATE, 0) == "1970-01-01"


@pytest.fixture
def los_angeles_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process runs in a time zone eight hours behind UTC, as many servers do."""
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    assert time.localtime(0).tm_year == 1969, "the time zone is in effect"
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("los_angeles_time")
@pytest.mark.parametrize(
    ("created", "day"),
    [
        (1700006400, "2023-11-15"),  # Stripe's `created`: 2023-11-15T00:00:00Z
        (1700006400 + 3600, "2023-11-15"),  # 01:00 UTC, still the 14th in Los Angeles
        (1700092799, "2023-11-15"),  # 23:59:59 UTC
        (0, "1970-01-01"),
    ],
)
def test_unix_timestamps_are_dates_in_utc_whatever_the_servers_time_zone(
    created: int, day: str
) -> None:
    assert coerce_value("SIGNUP", AttributeType.DATE, created) == day


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (AttributeType.NUMBER, "twelve"),
        (AttributeType.NUMBER, "nan"),
        (AttributeType.NUMBER, "1e999"),
        (AttributeType.BOOLEAN, "maybe"),
        (AttributeType.DATE, 10**20),
        (AttributeType.DATE, "yesterday"),
    ],
)
def test_coercion_refuses_ambiguous_values_naming_the_attribute(
    kind: AttributeType, value: Any
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        coerce_value("SCORE", kind, value)
    assert caught.value.details["attribute"] == "SCORE"


def _by_email_validator(raw: str) -> str | None:
    try:
        return validate_email(raw, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


_ATEXT = "abcxyz0189!#$%&'*+/=?^_`{|}~-."
_DOMAINS = st.sampled_from(
    [
        "example.com",
        "bench.example",
        "sub.domain.co.uk",
        "localhost",
        "foo.test",
        "x.invalid",
        "a.local",
        "1.2.3.4",
        "example.123",
        "-bad.com",
        "bad-.com",
        "xn--bcher-kva.example",
        "xn--zz.example",
        "a..b.com",
        ".example.com",
        "example.com.",
        "nodot",
        "a" * 63 + ".com",
        "a" * 64 + ".com",
        ".".join(["a" * 60] * 4) + ".com",
        "ex_ample.com",
        "bücher.example",
    ]
)


@settings(max_examples=400, deadline=None)
@given(local=st.text(alphabet=_ATEXT, min_size=0, max_size=70), domain=_DOMAINS)
def test_the_plain_address_shortcut_answers_what_email_validator_answers(
    local: str, domain: str
) -> None:
    """normalize_email checks plain ASCII addresses without email_validator (its domain
    verdicts kept per domain); whatever it answers, email_validator answers the same."""
    raw = f"{local}@{domain}"
    expected = _by_email_validator(raw)
    try:
        got: str | None = normalize_email(raw)
    except ValidationFailed:
        got = None
    assert got == expected, raw
