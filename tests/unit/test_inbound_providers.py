"""Inbound provider adapters: each signs and verifies its real payloads, rejects what it must,
and whatever a client sends only ever fails as a HookhubError (401 for headers, 400 for bodies)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookhub.errors import (
    BadRequest,
    InvalidJSON,
    SignatureInvalid,
    ValidationFailed,
)
from hookhub.inbound.providers import PROVIDERS, Provider, RawRequest, get_provider

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NOW = 1_700_000_000.0
GITHUB_DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
GITHUB_BODY = json.dumps(
    {"action": "opened", "issue": {"number": 7, "user": {"login": "octocat"}}}
).encode()
# 1700000000 in Arabic-Indic digits: str.isdigit() and int() accept them, HTTP senders don't.
NON_ASCII_DIGITS = "".join(chr(0x0660 + int(digit)) for digit in "1700000000")
STANDARD_BODY = json.dumps(
    {"type": "contact.created", "timestamp": "2026-01-02T03:04:05.000Z", "data": {"id": 1}}
).encode()


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


@dataclass(frozen=True)
class Case:
    provider: str
    body: bytes
    secret: str
    dedupe_key: str | None
    event_type: str | None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def adapter(self) -> Provider:
        return PROVIDERS[self.provider]

    def signed(self, now: float = NOW, body: bytes | None = None) -> RawRequest:
        headers = self.adapter.sign(self.body, self.secret, now, self.options)
        return RawRequest.build(headers, self.body if body is None else body)

    def verify(self, request: RawRequest, now: float = NOW, secret: str | None = None) -> None:
        self.adapter.verify(request, self.secret if secret is None else secret, now, self.options)


CASES = {
    case.provider: case
    for case in [
        Case(
            "stripe",
            fixture("stripe_customer_created"),
            "whsec_stripe_endpoint_secret",
            "evt_1NG8Du2eZvKYlo2CUI79vXWy",
            "customer.created",
        ),
        Case(
            "shopify",
            fixture("shopify_orders_create"),
            "shpss_app_secret",
            "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            "orders/create",
            {"topic": "orders/create", "event_id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"},
        ),
        Case(
            "calendly",
            fixture("calendly_invitee_created"),
            "calendly_signing_key",
            "invitee.created:2020-12-22T18:15:56.000000Z:https://api.calendly.com/"
            "scheduled_events/DDVRNUTABYGF4LO2/invitees/AHT4VZ5PQYFOSTFB",
            "invitee.created",
        ),
        Case(
            "typeform",
            fixture("typeform_form_response"),
            "typeform secret",
            "LtWXD3crgy",
            "form_response",
        ),
        Case(
            "github",
            GITHUB_BODY,
            "It's a Secret to Everybody",
            GITHUB_DELIVERY,
            "issues.opened",
            {"event": "issues", "delivery": GITHUB_DELIVERY},
        ),
        Case(
            "standard",
            STANDARD_BODY,
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_2b3c4d",
            "contact.created",
            {"msg_id": "msg_2b3c4d"},
        ),
        Case(
            "generic",
            fixture("typeform_form_response"),
            "generic-shared-secret",
            "LtWXD3crgy",
            "form_response",
            {"dedupe_path": "event_id", "event_type_path": "event_type"},
        ),
    ]
}
SIGNED = sorted(CASES)
# The email providers' own cases are in test_inbound_email_providers.py; the registry-wide
# tests below only need a secret each of them accepts.
EMAIL_SECRETS = {
    "mailgun": "key-3ax6xnjp29jd6fds4gc373sgvjxteol0",
    "postmark": "hooks:s3cret-password",
    "sendgrid": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpV"
    "KS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==",
}
TIMESTAMPED = ["stripe", "calendly", "standard"]


def without(request: RawRequest, *names: str) -> list[tuple[str, str]]:
    drop = {name.lower() for name in names}
    return [(k, v) for k, v in request.headers if k not in drop]


def replaced(request: RawRequest, name: str, value: str) -> RawRequest:
    return RawRequest((*without(request, name), (name.lower(), value)), request.body)


def test_registry_has_every_source_of_the_design() -> None:
    expected = {"stripe", "shopify", "calendly", "typeform", "github", "standard", "generic"}
    expected |= {"mailgun", "postmark", "sendgrid"}  # email providers' events (own test file)
    assert set(PROVIDERS) == expected
    assert all(PROVIDERS[name].name == name for name in PROVIDERS)
    assert get_provider("stripe") is PROVIDERS["stripe"]
    with pytest.raises(ValidationFailed, match="Unknown source 'mailchimp'"):
        get_provider("mailchimp")


def test_raw_request_keeps_repeats_and_lowercases_names() -> None:
    request = RawRequest.build(
        [("X-Thing", "a"), ("x-thing", "b"), ("Content-Type", "application/json; charset=utf-8")],
        b"{}",
    )
    assert request.headers[0] == ("x-thing", "a")
    assert request.header("X-THING") == "a"
    assert request.header("missing") is None
    assert request.content_type == "application/json; charset=utf-8"
    assert request.media_type == "application/json"
    with pytest.raises(SignatureInvalid, match="repeated"):
        request.single_header("x-thing")
    with pytest.raises(SignatureInvalid, match="missing"):
        request.single_header("x-missing")
    with pytest.raises(SignatureInvalid, match="empty"):
        RawRequest((("x-empty", "  "),), b"").single_header("X-Empty")


@pytest.mark.parametrize("name", SIGNED)
def test_signed_payload_verifies_and_yields_dedupe_key_and_type(name: str) -> None:
    case = CASES[name]
    request = case.signed()
    case.verify(request)
    payload = case.adapter.parse(request)
    assert payload == json.loads(case.body)
    assert case.adapter.dedupe_key(request, payload, case.options) == case.dedupe_key
    assert case.adapter.event_type(request, payload, case.options) == case.event_type


@pytest.mark.parametrize("name", SIGNED)
def test_tampered_body_is_rejected(name: str) -> None:
    case = CASES[name]
    request = case.signed(body=case.body.replace(b"e", b"E", 1))
    with pytest.raises(SignatureInvalid):
        case.verify(request)


@pytest.mark.parametrize("name", SIGNED)
def test_wrong_secret_is_rejected(name: str) -> None:
    case = CASES[name]
    wrong = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=" if name == "standard" else "nope"
    with pytest.raises(SignatureInvalid):
        case.verify(case.signed(), secret=wrong)


@pytest.mark.parametrize("name", SIGNED)
def test_missing_signature_header_is_rejected(name: str) -> None:
    case = CASES[name]
    request = case.signed()
    names = case.adapter.signature_headers or ("x-signature",)
    for header in names:
        with pytest.raises(SignatureInvalid, match="missing"):
            case.verify(RawRequest(tuple(without(request, header)), request.body))


@pytest.mark.parametrize("name", TIMESTAMPED)
def test_stale_and_future_timestamps_are_rejected(name: str) -> None:
    case = CASES[name]
    window = case.adapter.replay_window
    assert window is not None
    request = case.signed()
    case.verify(request, now=NOW + window)
    case.verify(request, now=NOW - window)
    with pytest.raises(SignatureInvalid, match="too old"):
        case.verify(request, now=NOW + window + 1)
    with pytest.raises(SignatureInvalid, match="future"):
        case.verify(request, now=NOW - window - 1)


def test_replay_windows() -> None:
    windows = {name: provider.replay_window for name, provider in PROVIDERS.items()}
    assert windows == {
        "stripe": 300,
        "shopify": None,
        "calendly": 180,
        "typeform": None,
        "github": None,
        "standard": 300,
        "generic": None,
        "mailgun": 300,
        "postmark": None,
        "sendgrid": 300,
    }


def test_tolerance_option_widens_the_window() -> None:
    case = CASES["stripe"]
    case.adapter.verify(case.signed(), case.secret, NOW + 600, {"tolerance": 900})
    with pytest.raises(ValidationFailed):
        case.adapter.verify(case.signed(), case.secret, NOW, {"tolerance": "soon"})


def malformed_values(name: str) -> list[str]:
    """Values no sender may get past verify, for each provider's signature header."""
    common = ["", "   ", "no-comma-and-no-equals", "é" * 10, "a" * 20_000, "\x00\x01", "=,=,="]
    specific = {
        "stripe": [
            "t=1700000000",  # no v1
            "t=1700000000;v1=ab",  # no comma
            "v1=" + "ab" * 32,  # no t
            "t=abc,v1=" + "ab" * 32,
            "t=" + "9" * 400 + ",v1=" + "ab" * 32,
            "t=-1700000000,v1=" + "ab" * 32,
            f"t={NON_ASCII_DIGITS},v1=" + "ab" * 32,
            "t=1700000000,t=1700000000,v1=" + "ab" * 32,
            "t=1700000000,v1=zz",
            "t=1700000000,v0=" + "ab" * 32,
            "t=1700000000,v1=" + "a" * 20_000,
        ],
        "shopify": ["!!!notbase64", "YWJj", "sha256=" + "ab" * 32, "A" * 20_000],
        "typeform": ["sha256=!!!", "sha256=", "sha1=YWJj", "YWJjZA==", "sha256=" + "A" * 20_000],
        "github": [
            "sha256=zz",
            "sha256=",
            "sha1=" + "ab" * 20,
            "ab" * 32,
            "sha256=" + "a" * 20_000,
        ],
        "generic": ["zz", "ab" * 31 + "a", "sha256=" + "ab" * 32],
    }
    specific["calendly"] = specific["stripe"]
    return common + specific.get(name, [])


@pytest.mark.parametrize("name", [n for n in SIGNED if n != "standard"])
def test_malformed_signature_headers_are_signature_invalid(name: str) -> None:
    case = CASES[name]
    request = case.signed()
    header = (case.adapter.signature_headers or ("x-signature",))[0]
    for value in malformed_values(name):
        with pytest.raises(SignatureInvalid):
            case.verify(replaced(request, header, value))
    good = request.header(header)
    assert good is not None
    repeated = RawRequest((*request.headers, (header.lower(), good)), request.body)
    with pytest.raises(SignatureInvalid, match="repeated"):
        case.verify(repeated)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("webhook-signature", "v1,!!!"),
        ("webhook-signature", "no-comma"),
        ("webhook-signature", ""),
        ("webhook-signature", "v1," + "A" * 20_000),
        ("webhook-signature", "v1,é"),
        ("webhook-timestamp", "abc"),
        ("webhook-timestamp", "9" * 400),
        ("webhook-timestamp", NON_ASCII_DIGITS),
        ("webhook-id", ""),
    ],
)
def test_malformed_standard_headers_are_signature_invalid(header: str, value: str) -> None:
    case = CASES["standard"]
    with pytest.raises(SignatureInvalid):
        case.verify(replaced(case.signed(), header, value))


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_repeated_standard_header_is_signature_invalid(header: str) -> None:
    case = CASES["standard"]
    request = case.signed()
    value = request.header(header)
    assert value is not None
    with pytest.raises(SignatureInvalid, match="repeated"):
        case.verify(RawRequest((*request.headers, (header, value)), request.body))


def test_github_known_vector() -> None:
    secret, body = "It's a Secret to Everybody", b"Hello, World!"
    signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    github = PROVIDERS["github"]
    assert github.sign(body, secret, NOW)["X-Hub-Signature-256"] == signature
    github.verify(RawRequest.build({"X-Hub-Signature-256": signature}, body), secret, NOW)


def test_github_event_without_action_and_form_encoded_body() -> None:
    github = PROVIDERS["github"]
    form = "application/x-www-form-urlencoded"
    body = b"payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%7D"
    headers = github.sign(body, "s", NOW, {"event": "push", "delivery": GITHUB_DELIVERY})
    request = RawRequest.build({**headers, "Content-Type": form}, body)
    github.verify(request, "s", NOW)
    payload = github.parse(request)
    assert payload == {"ref": "refs/heads/main"}
    assert github.event_type(request, payload) == "push"
    assert github.dedupe_key(request, payload) == GITHUB_DELIVERY
    with pytest.raises(InvalidJSON, match="payload"):
        github.parse(RawRequest.build({"Content-Type": form}, b"other=1"))


def test_stripe_accepts_any_matching_v1_and_ignores_v0() -> None:
    case = CASES["stripe"]
    request = case.signed()
    header = request.header("stripe-signature")
    assert header is not None
    timestamp, good = header.split(",")
    rolled = f"{timestamp},v0={'cd' * 32},v1={'ab' * 32},{good},scheme=x"
    case.verify(replaced(request, "Stripe-Signature", rolled))
    only_v0 = f"{timestamp},v0={good.removeprefix('v1=')}"
    with pytest.raises(SignatureInvalid, match="no valid v1"):
        case.verify(replaced(request, "Stripe-Signature", only_v0))


def test_stripe_secret_is_used_as_is() -> None:
    headers = PROVIDERS["stripe"].sign(b"{}", "whsec_abc", 1_600_000_000)
    expected = hmac.new(b"whsec_abc", b"1600000000.{}", hashlib.sha256).hexdigest()
    assert headers["Stripe-Signature"] == f"t=1600000000,v1={expected}"


def test_shopify_dedupes_on_event_id_then_webhook_id() -> None:
    case = CASES["shopify"]
    request = case.signed()
    payload = case.adapter.parse(request)
    webhook_id = request.header("x-shopify-webhook-id")
    assert case.adapter.dedupe_key(request, payload) == case.dedupe_key
    older = RawRequest(tuple(without(request, "x-shopify-event-id")), request.body)
    assert case.adapter.dedupe_key(older, payload) == webhook_id
    bare = RawRequest(tuple(without(older, "x-shopify-webhook-id")), request.body)
    assert case.adapter.dedupe_key(bare, payload) is None


def test_calendly_key_is_stable_across_retries_and_differs_per_event() -> None:
    case = CASES["calendly"]
    first, retry = case.signed(NOW), case.signed(NOW + 3600)
    payload = case.adapter.parse(first)
    assert case.adapter.dedupe_key(first, payload) == case.adapter.dedupe_key(retry, payload)
    canceled = {**payload, "event": "invitee.canceled", "created_at": "2020-12-23T09:00:00Z"}
    assert case.adapter.dedupe_key(first, canceled) != case.dedupe_key
    assert case.adapter.dedupe_key(first, {"event": "invitee.created"}) is None


@pytest.mark.parametrize(
    ("options", "secret"),
    [
        ({"auth": "bearer"}, "tok_123"),
        ({"auth": "basic"}, "zap:pa ss"),
        ({"auth": "basic", "username": "zap"}, "pass:word"),
        ({"header": "X-Hub-Signature", "algorithm": "sha1", "prefix": "sha1="}, "s3cret"),
        ({"header": "X-Sig", "algorithm": "sha512", "encoding": "base64"}, "s3cret"),
        ({}, "s3cret"),
    ],
)
def test_generic_authentication_modes(options: dict[str, Any], secret: str) -> None:
    generic = PROVIDERS["generic"]
    body = b'{"email": "a@example.com"}'
    request = RawRequest.build(generic.sign(body, secret, NOW, options), body)
    generic.verify(request, secret, NOW, options)
    with pytest.raises(SignatureInvalid):
        generic.verify(request, secret + "x", NOW, options)
    with pytest.raises(SignatureInvalid):
        generic.verify(RawRequest.build({}, body), secret, NOW, options)


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer ", "Basic tok_123", "bearer tok_1234", "tok_123", "Bearer " + "a" * 20_000],
)
def test_generic_bearer_rejects_malformed_authorization(authorization: str) -> None:
    request = RawRequest.build({"Authorization": authorization}, b"{}")
    with pytest.raises(SignatureInvalid):
        PROVIDERS["generic"].verify(request, "tok_123", NOW, {"auth": "bearer"})


@pytest.mark.parametrize("token", ["!!!", "emFwOnBhc3M", base64.b64encode(b"zap:nope").decode()])
def test_generic_basic_rejects_wrong_or_malformed_credentials(token: str) -> None:
    request = RawRequest.build({"Authorization": f"Basic {token}"}, b"{}")
    with pytest.raises(SignatureInvalid):
        PROVIDERS["generic"].verify(request, "zap:pass", NOW, {"auth": "basic"})


def test_generic_without_secret_accepts_anything() -> None:
    PROVIDERS["generic"].verify(RawRequest.build({}, b"whatever"), "", NOW)


@pytest.mark.parametrize(
    ("options", "secret", "message"),
    [
        ({"auth": "oauth"}, "s", "'auth' option"),
        ({"algorithm": "md5"}, "s", "'algorithm' option"),
        ({"encoding": "base32"}, "s", "'encoding' option"),
        ({"auth": "bearer"}, "", "needs a secret"),
        ({"auth": "basic"}, "nocolon", "username"),
    ],
)
def test_generic_bad_options_are_a_clear_configuration_error(
    options: dict[str, Any], secret: str, message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message):
        PROVIDERS["generic"].verify(RawRequest.build({}, b"{}"), secret, NOW, options)


def test_generic_form_body_and_dedupe_header() -> None:
    generic = PROVIDERS["generic"]
    options = {"dedupe_header": "X-Request-Id", "event_type_path": "kind"}
    body = b"email=ada%40example.com&kind=signup&tag=a&tag=b&empty="
    request = RawRequest.build(
        {"Content-Type": "application/x-www-form-urlencoded", "X-Request-Id": "req-42"}, body
    )
    payload = generic.parse(request)
    assert payload == {"email": "ada@example.com", "kind": "signup", "tag": ["a", "b"], "empty": ""}
    assert generic.dedupe_key(request, payload, options) == "req-42"
    assert generic.event_type(request, payload, options) == "signup"
    assert generic.dedupe_key(request, payload) is None
    with pytest.raises(BadRequest):
        generic.parse(
            RawRequest.build({"Content-Type": "application/x-www-form-urlencoded"}, b"\xff")
        )
    signed = generic.sign(b"{}", "s", NOW, options)
    assert signed["X-Request-Id"]


def test_generic_dedupe_path_walks_objects_and_lists() -> None:
    generic = PROVIDERS["generic"]
    request = RawRequest.build({}, b"")
    payload = {"data": {"items": [{"id": 7}, {"id": "b"}]}, "flag": True}
    assert generic.dedupe_key(request, payload, {"dedupe_path": "data.items.1.id"}) == "b"
    assert generic.dedupe_key(request, payload, {"dedupe_path": "data.items.0.id"}) == "7"
    for path in ["data.items.9.id", "data.items.x", "flag", "data", "nope.deeper"]:
        assert generic.dedupe_key(request, payload, {"dedupe_path": path}) is None
    assert generic.parse(RawRequest.build({}, b"[1, 2]")) == [1, 2]


BAD_BODIES = [
    b"",
    b"{",
    b"not json",
    b"\xff\xfe{}",
    b'{"a": NaN}',
    b'{"a": 1e400}',
    b"[" * 5000 + b"]" * 5000,
    b'{"a": "\\ud800"}',
]


@pytest.mark.parametrize("name", sorted(PROVIDERS))
@pytest.mark.parametrize("body", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_unparseable_body_is_invalid_json(name: str, body: bytes) -> None:
    with pytest.raises(InvalidJSON):
        PROVIDERS[name].parse(RawRequest.build({"Content-Type": "application/json"}, body))


@pytest.mark.parametrize("name", [n for n in PROVIDERS if n not in ("generic", "sendgrid")])
@pytest.mark.parametrize("body", [b"[]", b'"text"', b"42", b"null"])
def test_body_must_be_a_json_object(name: str, body: bytes) -> None:
    with pytest.raises(InvalidJSON, match="object"):
        PROVIDERS[name].parse(RawRequest.build({}, body))


def test_overlong_dedupe_key_is_bounded() -> None:
    stripe = PROVIDERS["stripe"]
    key = stripe.dedupe_key(RawRequest.build({}, b""), {"id": "evt_" + "x" * 5000})
    assert key is not None
    assert key.startswith("sha256:")
    assert len(key) <= 200


# -- whatever a client sends, only HookhubError subclasses come out -----------------------------

HEADER_NAMES = sorted(
    {name.lower() for provider in PROVIDERS.values() for name in provider.signature_headers}
    | {"authorization", "x-signature", "content-type", "x-github-event", "x-shopify-topic"}
)
header_values = st.one_of(
    st.text(max_size=120),
    st.from_regex(r"\At=1700000[0-9]{3},v1=[0-9a-f]{0,64}(,v0=[0-9a-z]{0,8})?\Z"),
    st.from_regex(r"\A(sha256=|sha1=)?[A-Za-z0-9+/=]{0,64}\Z"),
    st.from_regex(r"\A(v1,[A-Za-z0-9+/=]{0,50} ?){0,3}\Z"),
    st.from_regex(r"\A(Bearer|Basic) [A-Za-z0-9+/=:]{0,40}\Z"),
    st.sampled_from(["application/json", "application/x-www-form-urlencoded", "1700000000"]),
)
requests = st.builds(
    RawRequest,
    headers=st.lists(
        st.tuples(st.one_of(st.sampled_from(HEADER_NAMES), st.text(max_size=20)), header_values),
        max_size=8,
    ).map(tuple),
    body=st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
            max_leaves=20,
        ).map(lambda v: json.dumps(v).encode()),
        st.from_regex(rb"\A(payload=[^&]{0,40}&?){0,3}\Z"),
    ),
)
options = st.sampled_from(
    [
        {},
        {"auth": "bearer"},
        {"auth": "basic", "username": "u"},
        {"encoding": "base64", "prefix": "sha256="},
        {"dedupe_path": "a.0.b", "event_type_header": "x-github-event"},
    ]
)


@pytest.mark.parametrize("name", sorted(PROVIDERS))
@settings(max_examples=150, deadline=None)
@given(
    request=requests,
    now=st.one_of(st.just(NOW), st.floats(min_value=0, max_value=2**40)),
    opts=options,
)
def test_arbitrary_requests_only_raise_hookhub_errors(
    name: str, request: RawRequest, now: float, opts: dict[str, Any]
) -> None:
    provider = PROVIDERS[name]
    secret = CASES[name].secret if name in CASES else EMAIL_SECRETS[name]
    with contextlib.suppress(SignatureInvalid):
        provider.verify(request, secret, now, opts)
    try:
        payload = provider.parse(request)
    except BadRequest:  # InvalidJSON is one; anything else fails the test
        return
    for key in (
        provider.dedupe_key(request, payload, opts),
        provider.event_type(request, payload, opts),
    ):
        assert key is None or isinstance(key, str)
