"""Every inbound source through the real receive path, with its provider's real payloads.

A request signed the provider's way is acknowledged (202), and once the backlog is processed the
source's preset rules have done what they promise: the contact with its attributes, the custom
event with its properties and date, and the outbound messages those cause. A request that is not
signed right is refused with 401 and leaves nothing behind but its own entry in the request log.
Signature schemes in detail are unit-tested (tests/unit/test_inbound_providers.py); this file
checks what a user of the endpoint sees.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from hookhub.services import Services
from tests.support.inbound import (
    NOTHING,
    Hook,
    create_hook,
    fixture,
    log_statuses,
    messages_of,
    raw_client,
    requests_of,
    side_effects,
)

# A Hookhub contact.created message: the body one Hookhub sends another (source "standard").
HOOKHUB_MESSAGE = json.dumps(
    {
        "type": "contact.created",
        "timestamp": "2026-01-02T03:04:05.000Z",
        "data": {
            "contact_id": 7,
            "email": "ada@example.com",
            "ext_id": None,
            "attributes": {"FIRSTNAME": "Ada", "PLAN": "pro"},
            "list_ids": [],
            "unsubscribed": False,
            "created_at": "2026-01-02T03:04:05.000Z",
        },
    }
).encode()
SIGNUP = json.dumps({"email": "sam@example.com", "first_name": "Sam", "last_name": "Lee"}).encode()
SIGNUP_FORM = b"email=kim%40example.com&first_name=Kim&lastname=Park&consent=yes"
FORM = "application/x-www-form-urlencoded"
# Well-formed for every scheme (Standard Webhooks secrets are base64), just not the right one.
WRONG_SECRET = "whsec_" + base64.b64encode(b"not the secret of this webhook!!").decode()


@dataclass(frozen=True)
class Source:
    """One source, one payload, and what the source's presets make of it."""

    name: str
    source: str
    body: bytes
    email: str
    attributes: dict[str, Any]
    event: str | None = None
    event_properties: dict[str, Any] = field(default_factory=dict)
    event_date: str | None = None
    create: dict[str, Any] = field(default_factory=dict)
    send: dict[str, Any] = field(default_factory=dict)
    """Signing options for this request (Shopify's topic, a form's content type)."""
    signature_header: str = ""
    timestamped: bool = False


SOURCES = [
    Source(
        "stripe",
        "stripe",
        fixture("stripe_customer_created"),
        "jenny.rosen@example.com",
        {
            "FIRSTNAME": "Jenny",
            "LASTNAME": "Rosen",
            "SMS": "+15555550123",
            "STRIPE_CUSTOMER_ID": "cus_NhD8HD2bY8dP3V",
        },
        "stripe_customer_created",
        {"customer": "cus_NhD8HD2bY8dP3V", "livemode": False},
        "2023-06-06T22:19:30.000Z",
        create={"secret": "whsec_stripe_endpoint_secret"},
        signature_header="Stripe-Signature",
        timestamped=True,
    ),
    Source(
        "shopify-orders-create",
        "shopify",
        fixture("shopify_orders_create"),
        "john.smith@example.com",
        {
            "FIRSTNAME": "John",
            "LASTNAME": "Smith",
            "SMS": "+1-555-123-4567",
            "SHOPIFY_CUSTOMER_ID": "7012345678901",
        },
        "order_placed",
        {
            "order_id": 5847392847,
            "order_number": 1042,
            "total": 249.99,
            "currency": "USD",
            "items": [
                {
                    "title": "Vitamin C Serum",
                    "quantity": 1,
                    "price": 49.0,
                    "sku": "VC-30",
                    "product_id": 8061536829755,
                },
                {
                    "title": "Night Cream",
                    "quantity": 2,
                    "price": 90.49,
                    "sku": "NC-50",
                    "product_id": 8061536829756,
                },
            ],
        },
        "2024-01-15T15:30:00.000Z",
        create={"secret": "shpss_app_secret"},
        send={"topic": "orders/create"},
        signature_header="X-Shopify-Hmac-Sha256",
    ),
    Source(
        "shopify-customers-create",
        "shopify",
        fixture("shopify_customers_create"),
        "bob@biller.example.com",
        {"FIRSTNAME": "Bob", "LASTNAME": "Biller", "SHOPIFY_CUSTOMER_ID": "706405506930370084"},
        send={"topic": "customers/create"},
        signature_header="X-Shopify-Hmac-Sha256",
    ),
    Source(
        "calendly-invitee-created",
        "calendly",
        fixture("calendly_invitee_created"),
        "betty@example.com",
        {"FIRSTNAME": "Betty", "LASTNAME": "Rei"},
        "meeting_booked",
        {
            "meeting": "30 Minute Demo",
            "start_time": "2021-01-05T15:00:00.000000Z",
            "end_time": "2021-01-05T15:30:00.000000Z",
            "invitee": "https://api.calendly.com/scheduled_events/DDVRNUTABYGF4LO2/invitees/"
            "AHT4VZ5PQYFOSTFB",
            "timezone": "Europe/Rome",
            "utm_source": "newsletter",
            "utm_campaign": "spring",
        },
        "2020-12-22T18:15:55.361Z",
        signature_header="Calendly-Webhook-Signature",
        timestamped=True,
    ),
    Source(
        "calendly-invitee-canceled",
        "calendly",
        fixture("calendly_invitee_canceled"),
        "betty@example.com",
        {},
        "meeting_canceled",
        {
            "meeting": "30 Minute Demo",
            "start_time": "2021-01-05T15:00:00.000000Z",
            "invitee": "https://api.calendly.com/scheduled_events/DDVRNUTABYGF4LO2/invitees/"
            "AHT4VZ5PQYFOSTFB",
            "reason": "Something came up",
        },
        "2020-12-23T09:02:10.842Z",
        signature_header="Calendly-Webhook-Signature",
        timestamped=True,
    ),
    Source(
        "typeform",
        "typeform",
        fixture("typeform_form_response"),
        "laura@example.com",
        # Every answer by its field's ref, every hidden field by its name.
        {"FIRST_NAME": "Laura", "BUDGET": "1-5k", "USER_ID": "abc123456", "SOURCE": "ads"},
        "form_submitted",
        {
            "form_id": "lT4Z3j",
            "form_title": "Lead capture",
            "response": "a3a12ec67a1365927098a606107fac15",
        },
        "2018-01-18T18:17:02.000Z",
        signature_header="Typeform-Signature",
    ),
    Source(
        "github-push",
        "github",
        fixture("github_push"),
        "octocat@example.com",
        {"GITHUB_LOGIN": "octocat"},
        "github_push",
        {
            "repository": "octocat/Hello-World",
            "ref": "refs/heads/main",
            "commits": 1,
            "head": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        },
        "2024-03-05T13:21:09.000Z",
        send={"event": "push"},
        signature_header="X-Hub-Signature-256",
    ),
    Source(
        "standard",
        "standard",
        HOOKHUB_MESSAGE,
        "ada@example.com",
        {"FIRSTNAME": "Ada", "PLAN": "pro"},
        signature_header="webhook-signature",
        timestamped=True,
    ),
    Source(
        "generic-hmac-json",
        "generic",
        SIGNUP,
        "sam@example.com",
        {"FIRSTNAME": "Sam", "LASTNAME": "Lee"},
        create={"secret": "generic-shared-secret"},
        signature_header="X-Signature",
    ),
    Source(
        "generic-hmac-base64-form",
        "generic",
        SIGNUP_FORM,
        "kim@example.com",
        {"FIRSTNAME": "Kim", "LASTNAME": "Park"},
        create={
            "secret": "generic-shared-secret",
            "options": {
                "header": "X-Form-Signature",
                "encoding": "base64",
                "prefix": "sha256=",
                "dedupe_header": "X-Delivery",
            },
        },
        send={"content_type": FORM},
        signature_header="X-Form-Signature",
    ),
    Source(
        "generic-bearer",
        "generic",
        SIGNUP,
        "sam@example.com",
        {"FIRSTNAME": "Sam", "LASTNAME": "Lee"},
        create={"secret": "bearer-token-0123456789", "options": {"auth": "bearer"}},
        signature_header="Authorization",
    ),
    Source(
        "generic-basic-form",
        "generic",
        SIGNUP_FORM,
        "kim@example.com",
        {"FIRSTNAME": "Kim", "LASTNAME": "Park"},
        create={"secret": "s3cret-password", "options": {"auth": "basic", "username": "hooks"}},
        send={"content_type": FORM},
        signature_header="Authorization",
    ),
]


@pytest.fixture
def sender(client: Any) -> Iterator[Any]:
    with raw_client(client) as raw:
        yield raw


def _create(client: Any, case: Source) -> Hook:
    return create_hook(client, case.source, name=case.name, **case.create)


def _tampered(body: bytes) -> bytes:
    return body.replace(b"example.com", b"example.org", 1)


def _replace(headers: dict[str, str], name: str, value: str | None) -> list[tuple[str, str]]:
    """``headers`` with header ``name`` set to ``value`` (None: left out)."""
    kept = [(k, v) for k, v in headers.items() if k.lower() != name.lower()]
    return kept if value is None else [*kept, (name, value)]


def _bad_requests(hook: Hook, case: Source) -> Iterator[tuple[str, bytes, list[tuple[str, str]]]]:
    """Ways a request can fail authentication, each as (what, body, headers)."""
    body, name = case.body, case.signature_header
    good = hook.sign(body, **case.send)
    value = good[name]
    yield "wrong secret", body, list(hook.sign(body, secret=WRONG_SECRET, **case.send).items())
    yield "missing header", body, _replace(good, name, None)
    yield "empty header", body, _replace(good, name, "")
    yield "bad encoding", body, _replace(good, name, value[:-8] + "!*~%!*~=")
    yield "20 KB header", body, _replace(good, name, value + "A" * 20_480)
    yield "repeated header", body, [*good.items(), (name, value)]
    if case.signature_header != "Authorization":  # a bearer token or a password signs nothing
        yield "tampered body", _tampered(body), list(good.items())
    if "," in value:
        yield "no comma", body, _replace(good, name, value.replace(",", ""))
    if case.timestamped:
        window = (180 if case.source == "calendly" else 300) + 5
        for what, moment in (("stale", time.time() - window), ("future", time.time() + window)):
            yield f"{what} timestamp", body, list(hook.sign(body, now=moment, **case.send).items())


@pytest.mark.parametrize("case", SOURCES, ids=lambda s: s.name)
def test_only_the_genuine_request_acts_and_it_acts_as_the_presets_promise(
    client: Any, sender: Any, services: Services, case: Source
) -> None:
    hook = _create(client, case)

    # Badly signed: 401, and nothing but the request-log entry.
    tried = []
    for what, body, headers in _bad_requests(hook, case):
        response = sender.post(hook.path, content=body, headers=headers)
        assert response.status_code == 401, f"{what}: {response.status_code} {response.text}"
        assert response.json()["error"]["code"] == "invalid_signature", what
        assert response.json()["request_id"] >= 1, what
        tried.append(what)
    assert services.inbound.process_backlog() == 0
    assert side_effects(services) == NOTHING
    assert log_statuses(services) == ["rejected"] * len(tried)
    for entry in requests_of(client, hook):
        assert (entry["http_status"], entry["actions"]) == (401, None)
        assert entry["error"]

    # Signed as the provider signs: queued (a refused copy claimed no event id), and only
    # processing the log acts.
    response = sender.post(hook.path, content=case.body, headers=hook.sign(case.body, **case.send))
    assert response.status_code == 202, response.text
    request_id = response.json()["request_id"]
    assert response.json() == {"request_id": request_id, "status": "queued"}
    assert side_effects(services) == NOTHING, "rules run from the log, after the answer"
    assert services.inbound.process_backlog() == 1

    contact = client.get(f"/api/v1/contacts/{case.email}").json()
    assert contact["attributes"] == case.attributes
    assert contact["list_ids"] == []
    events = client.get("/api/v1/events", params={"contact": case.email}).json()["data"]
    if case.event is None:
        assert events == []
    else:
        [event] = events
        assert event["event_name"] == case.event
        assert event["event_properties"] == case.event_properties
        assert event["event_date"] == case.event_date
        assert event["contact_id"] == contact["id"]

    created = messages_of(client, "contact.created")
    assert [m["data"]["email"] for m in created] == [case.email]
    assert created[0]["data"]["attributes"] == case.attributes
    tracked = messages_of(client, "event.tracked")
    assert [m["data"]["event_name"] for m in tracked] == ([case.event] if case.event else [])
    assert len(messages_of(client)) == len(created) + len(tracked)

    logged = client.get(f"/api/v1/inbound-webhooks/{hook.id}/requests/{request_id}").json()
    assert logged["status"] == "processed"
    assert logged["body"] == case.body.decode()
    [action] = logged["actions"]
    assert action["contact"] == "created"
    assert action["contact_id"] == contact["id"]
    assert ("event_id" in action) == (case.event is not None)


def test_standard_webhooks_known_vector_through_the_endpoint(
    client: Any, sender: Any, services: Services
) -> None:
    """SIGNATURES.md's vector, with a window wide enough to reach back to its 2021 timestamp."""
    timestamp = 1614265330
    hook = create_hook(
        client,
        "standard",
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        options={"tolerance": time.time() - timestamp + 3600},
    )
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "content-type": "application/json",
    }
    body = b'{"test": 2432232314}'

    flipped = {**headers, "webhook-signature": "v1,h0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}
    assert sender.post(hook.path, content=body, headers=flipped).status_code == 401
    assert sender.post(hook.path, content=body + b" ", headers=headers).status_code == 401
    response = sender.post(hook.path, content=body, headers=headers)
    assert response.status_code == 202, response.text
    again = sender.post(hook.path, content=body, headers=headers)
    assert again.json() == {"request_id": again.json()["request_id"], "status": "duplicate"}

    [accepted] = requests_of(client, hook, status="received")
    assert accepted["dedupe_key"] == "msg_p5jXN8AQM9LWM0D4loKWxJek"
    services.inbound.process_backlog()
    # The vector's body is no contact event: the presets match nothing and nothing is written.
    assert requests_of(client, hook, status="processed")[0]["actions"] == []
    assert side_effects(services) == NOTHING


def test_github_known_vector_is_verified_before_the_body_is_parsed(
    client: Any, sender: Any, services: Services
) -> None:
    """The vector signs ``Hello, World!``: a genuine signature over a body that is not JSON is
    a 400, where the same body with a wrong signature is a 401."""
    hook = create_hook(client, "github", secret="It's a Secret to Everybody")
    body = b"Hello, World!"
    signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    headers = {"X-Hub-Signature-256": signature, "X-GitHub-Event": "ping"}

    response = sender.post(hook.path, content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_json"
    wrong = {**headers, "X-Hub-Signature-256": signature[:-1] + "f"}
    assert sender.post(hook.path, content=body, headers=wrong).status_code == 401

    statuses = [(r["http_status"], r["status"]) for r in requests_of(client, hook)]
    assert statuses == [(401, "rejected"), (400, "rejected")]
    assert side_effects(services) == NOTHING


def test_unparseable_bodies_are_400_and_only_logged(
    client: Any, sender: Any, services: Services
) -> None:
    hook = create_hook(client, "stripe")
    for body in (b"{", b"[1, 2]", b"\xff\xfe", b'{"id": "evt_\\ud800"}', b""):
        response = sender.post(hook.path, content=body, headers=hook.sign(body))
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["code"] == "invalid_json"
    assert log_statuses(services) == ["rejected"] * 5
    assert services.inbound.process_backlog() == 0
    assert side_effects(services) == NOTHING
