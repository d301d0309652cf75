"""The email providers' event webhooks through the real receive path, ``POST /in/{token}``.

Each source acknowledges what its provider signs (202), refuses anything else with a 401 that
leaves only its request-log entry, answers a retry of the same event ``duplicate``, and keeps
the secret it was given to itself. What the presets then do to emails is in
test_email_provider_events.py.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hookhub.services import Services
from tests.support.inbound import (
    NOTHING,
    Hook,
    create_hook,
    fixture,
    log_statuses,
    raw_client,
    requests_of,
    side_effects,
)
from tests.support.inbound import sendgrid_key_pair as key_pair

MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
POSTMARK_SECRET = "hooks:s3cret-password"
SENDGRID_PRIVATE, SENDGRID_PUBLIC = key_pair()
SECRETS = {"mailgun": MAILGUN_KEY, "postmark": POSTMARK_SECRET, "sendgrid": SENDGRID_PUBLIC}
SIGNING = {"sendgrid": {"private_key": SENDGRID_PRIVATE}}
FIXTURES = {
    "mailgun": ["mailgun_delivered", "mailgun_failed_permanent", "mailgun_opened"],
    "postmark": ["postmark_bounce", "postmark_delivery", "postmark_open"],
    "sendgrid": ["sendgrid_events"],
}


@pytest.fixture
def sender(client: Any) -> Iterator[Any]:
    with raw_client(client) as raw:
        yield raw


def _hook(client: Any, source: str) -> Hook:
    return create_hook(client, source, secret=SECRETS[source])


def _signed(hook: Hook, name: str, **options: Any) -> tuple[bytes, dict[str, str]]:
    return hook.signed(fixture(name), **{**SIGNING.get(hook.source, {}), **options})


@pytest.mark.parametrize("source", sorted(FIXTURES))
def test_genuine_events_are_queued_and_a_retry_is_a_duplicate(
    client: Any, sender: Any, services: Services, source: str
) -> None:
    hook = _hook(client, source)
    for name in FIXTURES[source]:
        body, headers = _signed(hook, name)
        response = sender.post(hook.path, content=body, headers=headers)
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "queued"
        # The provider's retry: the same event, signed again (a new timestamp and token).
        body, headers = _signed(hook, name)
        again = sender.post(hook.path, content=body, headers=headers)
        assert again.status_code == 200, again.text
        assert again.json()["status"] == "duplicate"
    assert log_statuses(services) == ["received", "duplicate"] * len(FIXTURES[source])
    received = requests_of(client, hook, status="received")
    assert [r["event_type"] for r in reversed(received)] == {
        "mailgun": ["delivered", "failed", "opened"],
        "postmark": ["Bounce", "Delivery", "Open"],
        "sendgrid": [
            "processed,deferred,delivered,open,click,bounce,dropped,spamreport,unsubscribe,"
            "group_unsubscribe"
        ],
    }[source]
    assert all(r["dedupe_key"] for r in received)


def _bad_requests(hook: Hook) -> Iterator[tuple[str, bytes, dict[str, str]]]:
    """Ways a request can fail authentication, each as (what, body, headers)."""
    name = FIXTURES[hook.source][0]
    body, headers = _signed(hook, name)
    if hook.source == "mailgun":
        wrong, _ = hook.signed(fixture(name), secret="key-of-another-domain")
        yield "wrong key", wrong, headers
        yield "unsigned", fixture(name).replace(b'"signature": {', b'"unsigned": {'), headers
        payload = json.loads(body)
        payload["signature"]["timestamp"] = str(int(payload["signature"]["timestamp"]) + 1)
        yield "tampered timestamp", json.dumps(payload).encode(), headers
        for what, moment in (("stale", time.time() - 305), ("future", time.time() + 305)):
            old, _ = hook.signed(fixture(name), now=moment)
            yield f"{what} timestamp", old, headers
    elif hook.source == "postmark":
        yield "missing header", body, {"Content-Type": "application/json"}
        wrong = base64.b64encode(b"hooks:guess").decode()
        yield "wrong password", body, {**headers, "Authorization": f"Basic {wrong}"}
        yield "not basic", body, {**headers, "Authorization": "Bearer " + POSTMARK_SECRET}
        yield "20 KB header", body, {**headers, "Authorization": "Basic " + "A" * 20_480}
    else:
        signature = "X-Twilio-Email-Event-Webhook-Signature"
        timestamp = "X-Twilio-Email-Event-Webhook-Timestamp"
        other_private, _ = key_pair()
        _, wrong = hook.signed(fixture(name), private_key=other_private)
        yield "wrong key", body, wrong
        yield "tampered body", body.replace(b"bounce", b"delivered", 1), headers
        yield "missing signature", body, {k: v for k, v in headers.items() if k != signature}
        yield "missing timestamp", body, {k: v for k, v in headers.items() if k != timestamp}
        yield "bad encoding", body, {**headers, signature: "!*~%!*~="}
        yield "moved timestamp", body, {**headers, timestamp: str(int(headers[timestamp]) + 1)}
        for what, moment in (("stale", time.time() - 305), ("future", time.time() + 305)):
            yield f"{what} timestamp", body, _signed(hook, name, now=moment)[1]


@pytest.mark.parametrize("source", sorted(FIXTURES))
def test_anything_not_signed_right_is_401_and_leaves_only_its_log_entry(
    client: Any, sender: Any, services: Services, source: str
) -> None:
    hook = _hook(client, source)
    tried = []
    for what, body, headers in _bad_requests(hook):
        response = sender.post(hook.path, content=body, headers=headers)
        assert response.status_code == 401, f"{what}: {response.status_code} {response.text}"
        assert response.json()["error"]["code"] == "invalid_signature", what
        tried.append(what)
    assert services.inbound.process_backlog() == 0
    assert side_effects(services) == NOTHING
    assert log_statuses(services) == ["rejected"] * len(tried)
    # A refused copy claimed no event id: the genuine request is still taken.
    body, headers = _signed(hook, FIXTURES[source][0])
    assert sender.post(hook.path, content=body, headers=headers).status_code == 202


def test_a_captured_mailgun_signature_cannot_carry_another_event(
    client: Any, sender: Any, services: Services
) -> None:
    """Mailgun signs the timestamp and token, not the event: the token is taken once."""
    hook = _hook(client, "mailgun")
    body, headers = _signed(hook, "mailgun_delivered")
    assert sender.post(hook.path, content=body, headers=headers).status_code == 202
    forged = json.loads(fixture("mailgun_failed_permanent"))
    forged["signature"] = json.loads(body)["signature"]
    response = sender.post(hook.path, content=json.dumps(forged).encode(), headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "duplicate"
    assert [r["event_type"] for r in requests_of(client, hook, status="received")] == ["delivered"]


@pytest.mark.parametrize("source", sorted(FIXTURES))
def test_the_secret_given_is_never_echoed_back(client: Any, source: str) -> None:
    created = client.post(
        "/api/v1/inbound-webhooks", json={"source": source, "secret": SECRETS[source]}
    )
    assert created.status_code == 201, created.text
    assert created.json()["secret"] is None
    webhook_id = created.json()["id"]
    for answer in (
        created,
        client.get(f"/api/v1/inbound-webhooks/{webhook_id}"),
        client.get("/api/v1/inbound-webhooks"),
        client.patch(f"/api/v1/inbound-webhooks/{webhook_id}", json={"name": "renamed"}),
    ):
        assert answer.status_code in (200, 201), answer.text
        assert SECRETS[source] not in answer.text
        assert SECRETS[source].split(":")[-1] not in answer.text


@pytest.mark.parametrize(
    ("source", "secret", "problem"),
    [
        ("mailgun", None, "webhook signing key"),
        ("sendgrid", None, "verification key"),
        ("sendgrid", "bm90IGEga2V5", "not a public key"),
        ("sendgrid", MAILGUN_KEY, "base64"),
        ("postmark", "no-colon-here", "user:password"),
    ],
)
def test_a_secret_that_could_never_verify_is_422_naming_the_problem(
    client: Any, source: str, secret: str | None, problem: str
) -> None:
    spec: dict[str, Any] = {"source": source}
    if secret is not None:
        spec["secret"] = secret
    response = client.post("/api/v1/inbound-webhooks", json=spec)
    assert response.status_code == 422, response.text
    assert problem in response.json()["error"]["message"]
    if secret is not None:
        assert secret not in response.text
    assert client.get("/api/v1/inbound-webhooks").json()["data"] == []

    # Changing a working webhook's secret to such a one is refused the same way.
    if secret is not None:
        hook = _hook(client, source)
        patched = client.patch(f"/api/v1/inbound-webhooks/{hook.id}", json={"secret": secret})
        assert patched.status_code == 422, patched.text
        assert problem in patched.json()["error"]["message"]


def test_postmark_without_a_secret_gets_credentials_shown_once(client: Any, sender: Any) -> None:
    created = client.post("/api/v1/inbound-webhooks", json={"source": "postmark"})
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    user, _, password = secret.partition(":")
    assert user == "hookhub"
    assert len(password) >= 20
    webhook_id = created.json()["id"]
    assert password not in client.get(f"/api/v1/inbound-webhooks/{webhook_id}").text
    hook = Hook(webhook_id, "postmark", created.json()["url"], secret)
    body, headers = _signed(hook, "postmark_delivery")
    assert sender.post(hook.path, content=body, headers=headers).status_code == 202
