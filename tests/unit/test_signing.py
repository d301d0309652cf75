"""Standard Webhooks signing: the published vector, rotation, tolerance, and interop with the
public ``standardwebhooks`` library in both directions."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks
from hypothesis import given, settings
from hypothesis import strategies as st

from hookhub.core import signing
from hookhub.errors import SignatureInvalid, ValidationFailed

# The vector of SIGNATURES.md (the Standard Webhooks reference test vector).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
# The vector's timestamp in Arabic-Indic digits: str.isdigit() and int() accept them.
NON_ASCII_DIGITS = "".join(chr(0x0660 + int(digit)) for digit in str(TIMESTAMP))
OTHER_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="


def signed_headers(
    secrets: list[str] | None = None, timestamp: int = TIMESTAMP, body: bytes = BODY
) -> dict[str, str]:
    return signing.headers(secrets or [SECRET], MSG_ID, timestamp, body)


def test_known_vector() -> None:
    assert signing.sign(SECRET, MSG_ID, TIMESTAMP, BODY) == SIGNATURE
    signing.verify([SECRET], {**signed_headers(), "webhook-signature": SIGNATURE}, BODY, TIMESTAMP)


def test_headers_name_the_message_and_its_time() -> None:
    assert signed_headers() == {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(TIMESTAMP),
        "webhook-signature": SIGNATURE,
    }


def test_secret_without_prefix_and_without_padding_is_the_same_key() -> None:
    bare = SECRET.removeprefix("whsec_")
    assert signing.sign(bare, MSG_ID, TIMESTAMP, BODY) == SIGNATURE
    unpadded = OTHER_SECRET.rstrip("=")
    assert signing.parse_secret(unpadded) == signing.parse_secret(OTHER_SECRET)


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_not base64!", "whsec_a", "whsec_é"])
def test_invalid_secret_is_a_clear_error(secret: str) -> None:
    with pytest.raises(ValidationFailed, match="secret"):
        signing.parse_secret(secret)


def test_timestamp_must_be_whole_seconds() -> None:
    with pytest.raises(TypeError):
        signing.sign(SECRET, MSG_ID, 1614265330.5, BODY)  # type: ignore[arg-type]


def test_rotation_sends_one_signature_per_secret_and_either_verifies() -> None:
    header = signing.signature_header([SECRET, OTHER_SECRET], MSG_ID, TIMESTAMP, BODY)
    first, second = header.split(" ")
    assert first == SIGNATURE
    assert second == signing.sign(OTHER_SECRET, MSG_ID, TIMESTAMP, BODY)
    headers = signed_headers([SECRET, OTHER_SECRET])
    signing.verify([SECRET], headers, BODY, TIMESTAMP)
    signing.verify([OTHER_SECRET], headers, BODY, TIMESTAMP)
    # A receiver that already has the new secret accepts a sender still on the old one.
    signing.verify([OTHER_SECRET, SECRET], signed_headers([SECRET]), BODY, TIMESTAMP)
    third = "whsec_" + "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="
    with pytest.raises(SignatureInvalid, match="No signature"):
        signing.verify([third], headers, BODY, TIMESTAMP)


def test_a_lone_secret_string_is_one_secret_not_its_characters() -> None:
    assert signing.signature_header(SECRET, MSG_ID, TIMESTAMP, BODY) == SIGNATURE
    signing.verify(SECRET, signed_headers(), BODY, TIMESTAMP)


def test_no_secret_signs_nothing() -> None:
    with pytest.raises(ValidationFailed):
        signing.signature_header([], MSG_ID, TIMESTAMP, BODY)
    with pytest.raises(SignatureInvalid, match="No webhook secret"):
        signing.verify([], signed_headers(), BODY, TIMESTAMP)


def test_unknown_versions_and_garbage_entries_are_skipped() -> None:
    header = f"v2,abc v1,!!! v1a,{SIGNATURE[3:]} {SIGNATURE}"
    signing.verify([SECRET], {**signed_headers(), "webhook-signature": header}, BODY, TIMESTAMP)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"body": b'{"test": 2432232315}'}, "No signature"),
        ({"webhook-id": "msg_other"}, "No signature"),
        ({"webhook-timestamp": str(TIMESTAMP + 1)}, "No signature"),
        ({"webhook-signature": "v1," + "A" * 44}, "No signature"),
        ({"webhook-signature": "v1,not-base64!"}, "no valid v1"),
        ({"webhook-signature": "v2," + SIGNATURE[3:]}, "no valid v1"),
        ({"webhook-signature": SIGNATURE.replace(",", "")}, "no valid v1"),
        ({"webhook-signature": "v1," + "A" * 20_000}, "No signature"),
        ({"webhook-signature": " "}, "missing or empty"),
        ({"webhook-id": ""}, "webhook-id header is missing"),
        ({"webhook-timestamp": "abc"}, "not whole seconds"),
        ({"webhook-timestamp": "1614265330.5"}, "not whole seconds"),
        ({"webhook-timestamp": "-1614265330"}, "not whole seconds"),
        ({"webhook-timestamp": NON_ASCII_DIGITS}, "not whole seconds"),
        ({"webhook-timestamp": "9" * 5000}, "not whole seconds"),
        ({"webhook-timestamp": "1e10"}, "not whole seconds"),
    ],
)
def test_what_does_not_verify(change: dict[str, object], message: str) -> None:
    headers = signed_headers()
    body = change.pop("body", BODY)
    headers.update({k: str(v) for k, v in change.items()})
    assert isinstance(body, bytes)
    with pytest.raises(SignatureInvalid, match=message):
        signing.verify([SECRET], headers, body, TIMESTAMP)


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header(name: str) -> None:
    headers = signed_headers()
    del headers[name]
    with pytest.raises(SignatureInvalid, match=name):
        signing.verify([SECRET], headers, BODY, TIMESTAMP)


def test_tolerance_applies_in_both_directions() -> None:
    headers = signed_headers()
    signing.verify([SECRET], headers, BODY, TIMESTAMP + 300)
    signing.verify([SECRET], headers, BODY, TIMESTAMP - 300)
    with pytest.raises(SignatureInvalid, match="too old"):
        signing.verify([SECRET], headers, BODY, TIMESTAMP + 301)
    with pytest.raises(SignatureInvalid, match="future"):
        signing.verify([SECRET], headers, BODY, TIMESTAMP - 301)
    signing.verify([SECRET], headers, BODY, TIMESTAMP + 3600, tolerance=3600)
    with pytest.raises(SignatureInvalid, match="too old"):
        signing.verify([SECRET], headers, BODY, TIMESTAMP + 11, tolerance=10)


def test_standardwebhooks_library_verifies_what_we_sign() -> None:
    now = int(time.time())
    body = b'{"type":"contact.created","data":{"email":"ada@example.com","name":"Ad\xc3\xa0"}}'
    headers = signing.headers([OTHER_SECRET, SECRET], "msg_2Qm5", now, body)
    for secret in (SECRET, OTHER_SECRET):
        payload = standardwebhooks.Webhook(secret).verify(body, headers)
        assert payload["data"]["name"] == "Adà"
    wrong = "whsec_" + "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(wrong).verify(body, headers)


def test_we_verify_what_the_standardwebhooks_library_signs() -> None:
    now = int(time.time())
    body = '{"type":"invoice.paid","amount":12,"note":"über"}'
    moment = datetime.fromtimestamp(now, UTC)
    signature = standardwebhooks.Webhook(SECRET).sign("msg_lib", moment, body)
    headers = {
        "webhook-id": "msg_lib",
        "webhook-timestamp": str(now),
        "webhook-signature": signature,
    }
    signing.verify([SECRET], headers, body.encode(), now)
    with pytest.raises(SignatureInvalid):
        signing.verify([OTHER_SECRET], headers, body.encode(), now)


header_values = st.one_of(
    st.text(max_size=200),
    st.from_regex(r"\A(v1,[A-Za-z0-9+/=]{0,60} ?){0,4}\Z"),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
)


@settings(max_examples=300, deadline=None)
@given(
    headers=st.dictionaries(
        st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature", "x-other"]),
        header_values,
    ),
    body=st.binary(max_size=200),
    now=st.floats(min_value=0, max_value=2**40, allow_nan=False),
)
def test_arbitrary_headers_only_ever_fail_as_signature_invalid(
    headers: dict[str, str], body: bytes, now: float
) -> None:
    # Anything but SignatureInvalid (a ValueError, binascii.Error, OverflowError) fails the test.
    with contextlib.suppress(SignatureInvalid):
        signing.verify([SECRET], headers, body, now)
