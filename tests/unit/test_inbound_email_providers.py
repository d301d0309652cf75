"""The email providers' event webhooks (Mailgun, Postmark, SendGrid): each verifies what its
provider signs, refuses what it must with a 401 (or a bad secret with a 422 when saved), and
finds the event id and type in its real payloads."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hookhub.errors import BadRequest, InvalidJSON, SignatureInvalid, ValidationFailed
from hookhub.inbound.providers import PROVIDERS, RawRequest
from tests.support.inbound import fixture, sendgrid_key_pair

NOW = 1_770_150_000.0
MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
POSTMARK_SECRET = "hooks:s3cret-password"
SENDGRID_PRIVATE, SENDGRID_PUBLIC = sendgrid_key_pair()
mailgun, postmark, sendgrid = PROVIDERS["mailgun"], PROVIDERS["postmark"], PROVIDERS["sendgrid"]


def _with(request: RawRequest, name: str, value: str | None) -> RawRequest:
    kept = tuple((k, v) for k, v in request.headers if k != name.lower())
    return RawRequest(kept if value is None else (*kept, (name.lower(), value)), request.body)


# -- Mailgun --------------------------------------------------------------------------------


def mailgun_request(
    name: str = "mailgun_delivered", now: float = NOW, key: str = MAILGUN_KEY, **options: Any
) -> RawRequest:
    body, headers = mailgun.signed_request(fixture(name), key, now, options)
    return RawRequest.build(headers, body)


def with_signature(request: RawRequest, **changes: Any) -> RawRequest:
    payload = json.loads(request.body)
    payload["signature"].update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del payload["signature"][key]
    return RawRequest(request.headers, json.dumps(payload).encode())


@pytest.mark.parametrize(
    ("name", "event_id", "event"),
    [
        ("mailgun_delivered", "MXcc2gEpS-eN8HfkOnmK2w", "delivered"),
        ("mailgun_failed_permanent", "G9Bn5sl1TC6nu79C8C0bwg", "failed"),
        ("mailgun_opened", "Ase7i2zsRYeDXztHGENqRA", "opened"),
    ],
)
def test_mailgun_signed_event_verifies_and_dedupes_on_its_id_and_token(
    name: str, event_id: str, event: str
) -> None:
    request = mailgun_request(name, token="t" * 50)
    mailgun.verify(request, MAILGUN_KEY, NOW)
    payload = mailgun.parse(request)
    assert payload["event-data"] == json.loads(fixture(name))["event-data"]
    assert mailgun.dedupe_key(request, payload) == event_id
    assert mailgun.event_type(request, payload) == event
    assert mailgun.dedupes_body()
    assert mailgun.body_key(request, payload) == "token:" + "t" * 50


def test_mailgun_signature_is_hmac_of_timestamp_and_token() -> None:
    """Computed here independently of the provider module, as Mailgun's docs describe it."""
    token = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
    signed = json.loads(mailgun_request(token=token).body)["signature"]
    expected = hmac.new(MAILGUN_KEY.encode(), f"1770150000{token}".encode(), hashlib.sha256)
    assert signed == {"timestamp": "1770150000", "token": token, "signature": expected.hexdigest()}
    # Integer timestamps (older payloads) sign the same digits.
    numeric = with_signature(mailgun_request(token=token), timestamp=1770150000)
    mailgun.verify(numeric, MAILGUN_KEY, NOW)


def test_mailgun_refuses_a_wrong_key_and_any_change_to_what_it_signs() -> None:
    request = mailgun_request()
    signature = json.loads(request.body)["signature"]
    with pytest.raises(SignatureInvalid, match="does not match"):
        mailgun.verify(request, "key-some-other-domain", NOW)
    for changes in (
        {"token": signature["token"][:-1] + "x"},
        {"timestamp": str(int(signature["timestamp"]) - 1)},
        {"signature": signature["signature"][:-2] + "00"},
    ):
        with pytest.raises(SignatureInvalid):
            mailgun.verify(with_signature(request, **changes), MAILGUN_KEY, NOW)


def test_mailgun_event_swapped_under_a_used_signature_claims_the_same_token() -> None:
    """Mailgun does not sign the event: a captured signature verifies with any event-data, so
    its token is a dedupe key of its own and the second use is a duplicate."""
    genuine = mailgun_request("mailgun_delivered", token="captured" * 6)
    forged_payload = json.loads(fixture("mailgun_failed_permanent"))
    forged_payload["signature"] = json.loads(genuine.body)["signature"]
    forged = RawRequest(genuine.headers, json.dumps(forged_payload).encode())
    mailgun.verify(forged, MAILGUN_KEY, NOW)
    first, second = mailgun.parse(genuine), mailgun.parse(forged)
    assert mailgun.dedupe_key(genuine, first) != mailgun.dedupe_key(forged, second)
    assert mailgun.body_key(genuine, first) == mailgun.body_key(forged, second)


def test_mailgun_stale_and_future_timestamps_are_refused() -> None:
    request = mailgun_request()
    mailgun.verify(request, MAILGUN_KEY, NOW + 300)
    mailgun.verify(request, MAILGUN_KEY, NOW - 300)
    with pytest.raises(SignatureInvalid, match="too old"):
        mailgun.verify(request, MAILGUN_KEY, NOW + 301)
    with pytest.raises(SignatureInvalid, match="future"):
        mailgun.verify(request, MAILGUN_KEY, NOW - 301)
    mailgun.verify(request, MAILGUN_KEY, NOW + 600, {"tolerance": 900})


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"event-data": {"event": "delivered"}}',
        b'{"signature": "abc"}',
        b'{"signature": {"timestamp": "1770150000", "token": "t"}}',
        b'{"signature": {"timestamp": "1770150000", "signature": "ab"}}',
        b'{"signature": {"token": "t", "signature": "ab"}}',
        b'{"signature": {"timestamp": "", "token": "t", "signature": "ab"}}',
        b'{"signature": {"timestamp": true, "token": "t", "signature": "ab"}}',
        b'{"signature": {"timestamp": 1770150000.5, "token": "t", "signature": "ab"}}',
        b'{"signature": {"timestamp": "soon", "token": "t", "signature": "ab"}}',
        b'{"signature": {"timestamp": "1770150000", "token": "t", "signature": "zz"}}',
        b'{"signature": {"timestamp": "1770150000", "token": "\xc3\xa9", "signature": "ab"}}',
        b'{"signature": {"timestamp": "1770150000", "token": "'
        + b"t" * 300
        + b'", "signature": "ab"}}',
    ],
)
def test_mailgun_missing_or_malformed_signature_is_signature_invalid(body: bytes) -> None:
    with pytest.raises(SignatureInvalid):
        mailgun.verify(RawRequest.build({"Content-Type": "application/json"}, body), "k", NOW)


def test_mailgun_needs_its_signing_key_when_saved() -> None:
    for secret in (None, "", "   "):
        with pytest.raises(ValidationFailed, match="webhook signing key"):
            mailgun.check_secret(secret)
    mailgun.check_secret(MAILGUN_KEY)
    assert not mailgun.echoes_secret


# -- Postmark -------------------------------------------------------------------------------


def postmark_request(name: str, secret: str = POSTMARK_SECRET) -> RawRequest:
    body = fixture(name)
    return RawRequest.build(postmark.sign(body, secret, NOW), body)


@pytest.mark.parametrize(
    ("name", "key", "event"),
    [
        ("postmark_bounce", "Bounce:4323372036854775807", "Bounce"),
        (
            "postmark_delivery",
            "Delivery:a94dfe84-8ab9-43cf-8a1c-ac234c296e25:ada@example.com:"
            "2026-02-03T19:26:41.2735393Z",
            "Delivery",
        ),
        (
            "postmark_open",
            "Open:a94dfe84-8ab9-43cf-8a1c-ac234c296e25:ada@example.com:"
            "2026-02-03T20:10:11.2493688Z",
            "Open",
        ),
    ],
)
def test_postmark_basic_auth_verifies_and_events_dedupe(name: str, key: str, event: str) -> None:
    request = postmark_request(name)
    expected = "Basic " + base64.b64encode(POSTMARK_SECRET.encode()).decode()
    assert request.header("authorization") == expected
    postmark.verify(request, POSTMARK_SECRET, NOW)
    # Nothing is signed with a time: a request is as good tomorrow as today.
    postmark.verify(request, POSTMARK_SECRET, NOW + 86_400 * 365)
    payload = postmark.parse(request)
    assert postmark.dedupe_key(request, payload) == key
    assert postmark.event_type(request, payload) == event


def test_postmark_dedupe_keys_of_the_other_record_types() -> None:
    request = RawRequest.build({}, b"{}")
    click = {
        "RecordType": "Click",
        "MessageID": "m",
        "Recipient": "a@example.com",
        "ReceivedAt": "2026-02-03T20:10:11Z",
        "OriginalLink": "https://shop.example.com/",
    }
    assert postmark.dedupe_key(request, click) == (
        "Click:m:a@example.com:2026-02-03T20:10:11Z:https://shop.example.com/"
    )
    complaint = {"RecordType": "SpamComplaint", "ID": 42, "MessageID": "m"}
    assert postmark.dedupe_key(request, complaint) == "SpamComplaint:42"
    change = {"RecordType": "SubscriptionChange", "MessageID": "m", "Recipient": "a@example.com"}
    assert postmark.dedupe_key(request, {**change, "ChangedAt": "2026-02-03T20:10:11Z"}) == (
        "SubscriptionChange:m:a@example.com:2026-02-03T20:10:11Z"
    )
    assert postmark.dedupe_key(request, change) is None  # no time: no safe key
    assert postmark.dedupe_key(request, {"RecordType": "Inbound", "MessageID": "m"}) is None


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Basic",
        "Basic !!!notbase64",
        "Bearer " + base64.b64encode(POSTMARK_SECRET.encode()).decode(),
        "Basic " + base64.b64encode(b"hooks:wrong-password").decode(),
        "Basic " + base64.b64encode(b"other:s3cret-password").decode(),
        "Basic " + base64.b64encode(POSTMARK_SECRET.encode() + b"x").decode(),
        "Basic " + "A" * 20_000,
    ],
)
def test_postmark_missing_or_wrong_credentials_are_signature_invalid(
    authorization: str | None,
) -> None:
    request = _with(postmark_request("postmark_delivery"), "Authorization", authorization)
    with pytest.raises(SignatureInvalid):
        postmark.verify(request, POSTMARK_SECRET, NOW)


def test_postmark_secret_must_be_user_and_password() -> None:
    postmark.check_secret(None)  # generated when the webhook is created
    postmark.check_secret("user:pa:ss")  # the password may hold colons
    for secret in ("nocolon", ":password", "user:", ""):
        with pytest.raises(ValidationFailed, match="user:password"):
            postmark.check_secret(secret)


# -- SendGrid -------------------------------------------------------------------------------

VECTOR_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62g"
    "w+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
)
VECTOR_SIGNATURE = (
    "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluL"
    "tEZtM="
)
VECTOR_TIMESTAMP = 1600112502
VECTOR_BODY = (
    json.dumps(
        [
            {
                "email": "hello@world.com",
                "event": "dropped",
                "reason": "Bounced Address",
                "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
                "sg_message_id": "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18"
                "-5F5FC76C-9.0",
                "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",
                "timestamp": 1600112492,
            }
        ],
        sort_keys=True,
        separators=(",", ":"),
    )
    + "\r\n"
).encode()
SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


def sendgrid_request(body: bytes | None = None, now: float = NOW) -> RawRequest:
    body = fixture("sendgrid_events") if body is None else body
    headers = sendgrid.sign(body, SENDGRID_PUBLIC, now, {"private_key": SENDGRID_PRIVATE})
    return RawRequest.build(headers, body)


def test_sendgrid_published_vector_verifies() -> None:
    headers = {SIGNATURE: VECTOR_SIGNATURE, TIMESTAMP: str(VECTOR_TIMESTAMP)}
    request = RawRequest.build(headers, VECTOR_BODY)
    sendgrid.verify(request, VECTOR_KEY, VECTOR_TIMESTAMP + 5)
    with pytest.raises(SignatureInvalid, match="does not match"):
        sendgrid.verify(
            RawRequest.build(headers, VECTOR_BODY.rstrip()), VECTOR_KEY, VECTOR_TIMESTAMP
        )
    later = {**headers, TIMESTAMP: str(VECTOR_TIMESTAMP + 1)}
    with pytest.raises(SignatureInvalid, match="does not match"):
        sendgrid.verify(RawRequest.build(later, VECTOR_BODY), VECTOR_KEY, VECTOR_TIMESTAMP)


def test_sendgrid_batch_verifies_dedupes_on_every_event_and_names_its_types() -> None:
    request = sendgrid_request()
    sendgrid.verify(request, SENDGRID_PUBLIC, NOW)
    payload = sendgrid.parse(request)
    assert payload == json.loads(fixture("sendgrid_events"))
    assert sendgrid.event_type(request, payload) == (
        "processed,deferred,delivered,open,click,bounce,dropped,spamreport,unsubscribe,"
        "group_unsubscribe"
    )
    key = sendgrid.dedupe_key(request, payload)
    assert key is not None
    assert key.startswith("sha256:")  # eleven event ids, digested
    assert sendgrid.dedupe_key(request, payload[:1]) == payload[0]["sg_event_id"]
    assert sendgrid.dedupe_key(request, payload[1:]) != key
    assert sendgrid.dedupe_key(request, [*payload, {"event": "open"}]) is None
    assert sendgrid.dedupe_key(request, []) is None
    assert sendgrid.event_type(request, []) is None


def test_sendgrid_refuses_tampering_a_wrong_key_and_stale_or_future_timestamps() -> None:
    request = sendgrid_request()
    tampered = RawRequest(request.headers, request.body.replace(b"bounce", b"delivered", 1))
    with pytest.raises(SignatureInvalid, match="does not match"):
        sendgrid.verify(tampered, SENDGRID_PUBLIC, NOW)
    _, other_public = sendgrid_key_pair()
    with pytest.raises(SignatureInvalid, match="does not match"):
        sendgrid.verify(request, other_public, NOW)
    sendgrid.verify(request, SENDGRID_PUBLIC, NOW + 300)
    with pytest.raises(SignatureInvalid, match="too old"):
        sendgrid.verify(request, SENDGRID_PUBLIC, NOW + 301)
    with pytest.raises(SignatureInvalid, match="future"):
        sendgrid.verify(request, SENDGRID_PUBLIC, NOW - 301)
    moved = _with(request, TIMESTAMP, str(int(NOW) + 1))  # a fresh time on an old signature
    with pytest.raises(SignatureInvalid, match="does not match"):
        sendgrid.verify(moved, SENDGRID_PUBLIC, NOW)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        (SIGNATURE, None),
        (TIMESTAMP, None),
        (SIGNATURE, ""),
        (SIGNATURE, "!!!notbase64"),
        (SIGNATURE, base64.b64encode(b"not a DER signature").decode()),
        (SIGNATURE, "A" * 20_000),
        (TIMESTAMP, "soon"),
        (TIMESTAMP, "1770150000.5"),
        (TIMESTAMP, "9" * 400),
    ],
)
def test_sendgrid_missing_or_malformed_headers_are_signature_invalid(
    header: str, value: str | None
) -> None:
    with pytest.raises(SignatureInvalid):
        sendgrid.verify(_with(sendgrid_request(), header, value), SENDGRID_PUBLIC, NOW)


def _spki(key: Any) -> str:
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        (None, "verification key as its secret"),
        ("not base64 at all!", "must be base64"),
        (base64.b64encode(b"random bytes, no key").decode(), "not a public key"),
        (_spki(rsa.generate_private_key(65537, 2048).public_key()), "not an elliptic-curve key"),
        (_spki(ec.generate_private_key(ec.SECP384R1()).public_key()), "curve secp384r1"),
    ],
)
def test_sendgrid_key_that_cannot_verify_is_refused_when_saved(
    secret: str | None, problem: str
) -> None:
    with pytest.raises(ValidationFailed, match=problem) as caught:
        sendgrid.check_secret(secret)
    assert caught.value.details == {"field": "secret"}
    assert not sendgrid.echoes_secret


def test_sendgrid_key_may_be_given_as_pem() -> None:
    pem = "-----BEGIN PUBLIC KEY-----\n" + SENDGRID_PUBLIC + "\n-----END PUBLIC KEY-----\n"
    sendgrid.check_secret(pem)
    sendgrid.verify(sendgrid_request(), pem, NOW)


def test_sendgrid_signs_only_with_a_private_key() -> None:
    with pytest.raises(BadRequest, match="private key"):
        sendgrid.sign(b"[]", SENDGRID_PUBLIC, NOW)
    with pytest.raises(BadRequest, match="private_key option"):
        sendgrid.sign(b"[]", SENDGRID_PUBLIC, NOW, {"private_key": "bm90IGEga2V5"})


@pytest.mark.parametrize("body", [b"{}", b'[{"event": "open"}, 1]', b'"text"', b"null", b"{"])
def test_sendgrid_body_must_be_an_array_of_events(body: bytes) -> None:
    with pytest.raises(InvalidJSON):
        sendgrid.parse(RawRequest.build({}, body))
    assert sendgrid.parse(RawRequest.build({}, b"[]")) == []
