"""Endpoint transforms end to end: presets and templates rendered at the first attempt, stored,
signed and sent byte-for-byte the same on retries, to a real receiver that checks each
receiver's documented shape (Slack, Discord, Teams); failures and previews."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import pytest
from aiohttp import web
from sqlalchemy import select

from hookhub.errors import HookhubError
from hookhub.services import Services
from hookhub.store.schema import deliveries, messages
from tests.support.chat_shapes import check_discord, check_slack, check_teams
from tests.support.delivery import create_contact, eventually, running_worker, verify
from tests.support.receiver import Received, running_receiver

HOOK = "http://127.0.0.1:9/hook"


async def _deliver_one(services: Services, transform: dict[str, Any]) -> tuple[Any, Received]:
    async with running_receiver() as receiver, running_worker(services):
        endpoint = services.endpoints.create(
            {"url": receiver.url, "events": ["contact.created"], "transform": transform}
        )
        create_contact(services, "ada@example.com", FIRSTNAME="Ada")
        await receiver.wait_for(1)
    [request] = receiver.requests
    return endpoint, request


@pytest.mark.parametrize(
    ("preset", "check"),
    [("slack", check_slack), ("discord", check_discord), ("teams", check_teams)],
)
async def test_chat_presets_send_the_receivers_shape_signed(
    services: Services, preset: str, check: Any
) -> None:
    endpoint, request = await _deliver_one(services, {"preset": preset})
    body = verify(endpoint.secret, request)  # the signature covers the transformed body
    check(body)
    assert "ada@example.com" in request.body.decode()
    assert "contact.created" in request.body.decode()


async def test_google_sheets_preset_sends_one_flat_row(services: Services) -> None:
    endpoint, request = await _deliver_one(services, {"preset": "google_sheets"})
    row = verify(endpoint.secret, request)
    assert list(row)[:4] == ["timestamp", "type", "contact_id", "email"]
    assert row["type"] == "contact.created"
    assert row["email"] == "ada@example.com"
    assert row["attributes.FIRSTNAME"] == "Ada"
    assert all(not isinstance(v, dict | list) for v in row.values())


async def test_brevo_preset_speaks_brevos_marketing_webhook(services: Services) -> None:
    endpoint, request = await _deliver_one(services, {"preset": "brevo"})
    body = verify(endpoint.secret, request)
    assert body["event"] == "contact.created"  # Brevo has no such event: ours is kept
    assert body["email"] == "ada@example.com"
    assert isinstance(body["id"], int)
    assert isinstance(body["ts"], int)
    assert body["ts_event"] == body["ts"]
    assert datetime.strptime(body["date"], "%Y-%m-%d %H:%M:%S")


@pytest.mark.parametrize(
    ("event_type", "brevo_event"),
    [
        ("email.opened", "opened"),
        ("email.clicked", "click"),
        ("email.delivered", "delivered"),
        ("email.bounced", "hard_bounce"),
        ("contact.unsubscribed", "unsubscribed"),
        ("list.contact_added", "list_addition"),
    ],
)
def test_brevo_preset_maps_event_names(
    services: Services, event_type: str, brevo_event: str
) -> None:
    endpoint = services.endpoints.create(
        {"url": HOOK, "events": ["*"], "transform": {"preset": "brevo"}}
    )
    shown = services.endpoints.preview(endpoint.id, event_type=event_type, message_id=None)
    assert shown["body"]["event"] == brevo_event
    assert shown["body"]["email"] == "ada@example.com"


async def test_template_renders_json_with_tojson(services: Services) -> None:
    template = (
        '{"who": {{ data.email | tojson }}, "kind": "{{ type }}", "none": {{ origin|tojson }}}'
    )
    endpoint, request = await _deliver_one(services, {"template": template})
    assert verify(endpoint.secret, request) == {
        "who": "ada@example.com",
        "kind": "contact.created",
        "none": None,
    }


async def test_a_retry_sends_the_stored_bytes(services: Services) -> None:
    calls = 0

    async def fail_first(_request: Received) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        return web.Response(status=500 if calls == 1 else 200)

    async with running_receiver(fail_first) as receiver, running_worker(services):
        endpoint = services.endpoints.create(
            {"url": receiver.url, "events": ["contact.created"], "transform": {"preset": "slack"}}
        )
        create_contact(services, "ada@example.com")
        await receiver.wait_for(2, timeout=15)
        # The template changes between the attempts: the retry still sends the first body.
        services.endpoints.update(endpoint.id, {"transform": {"preset": "discord"}})
    first, second = receiver.requests[:2]
    assert first.body == second.body
    check_slack(verify(endpoint.secret, second))
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    with services.db.read() as conn:
        [stored] = conn.execute(select(deliveries.c.body)).scalars().all()
    assert stored.encode() == first.body


async def test_a_template_failing_at_send_fails_once_and_is_exhausted(services: Services) -> None:
    async with running_receiver() as receiver, running_worker(services):
        endpoint = services.endpoints.create(
            {
                "url": receiver.url,
                "events": ["contact.created"],
                "transform": {"template": "not json: {{ data.email }}"},
            }
        )
        create_contact(services, "ada@example.com")

        def exhausted() -> Any:
            found = services.endpoints.deliveries(
                endpoint.id, status="exhausted", before_id=None, limit=10
            )
            return found

        [delivery] = await eventually(exhausted)
    assert receiver.requests == []
    [attempt] = services.endpoints.delivery(delivery.id).attempts
    assert attempt.error == "transform_failed"
    assert attempt.error_detail
    assert "did not render JSON" in attempt.error_detail
    with services.db.read() as conn:
        rows = conn.execute(
            select(messages.c.payload).where(messages.c.type == "delivery.exhausted")
        ).all()
    [payload] = [orjson.loads(r.payload)["data"] for r in rows]
    assert payload["delivery_id"] == delivery.id
    assert payload["attempts"] == 1
    assert services.endpoints.get(endpoint.id).enabled


@pytest.mark.parametrize(
    ("transform", "extra", "words"),
    [
        ({"preset": "myspace"}, {}, "preset"),
        ({"preset": "slack", "template": "{}"}, {}, "transform must be"),
        ({"template": "{{ oops "}, {}, "does not compile"),
        ({"template": ""}, {}, "non-empty"),
        ({"preset": "slack"}, {"batched": True}, "batched"),
    ],
)
def test_invalid_transforms_are_refused_at_save(
    client: Any, transform: Any, extra: dict[str, Any], words: str
) -> None:
    response = client.post(
        "/api/v1/webhooks", json={"url": HOOK, "events": ["*"], "transform": transform, **extra}
    )
    assert response.status_code == 422, response.text
    assert words in response.json()["error"]["message"]


def test_patch_sets_and_clears_a_transform(client: Any) -> None:
    created = client.post("/api/v1/webhooks", json={"url": HOOK, "events": ["*"]}).json()
    url = f"/api/v1/webhooks/{created['id']}"
    patched = client.patch(url, json={"transform": {"preset": "teams"}})
    assert patched.status_code == 200
    assert patched.json()["transform"] == {"preset": "teams"}
    assert client.patch(url, json={"batched": True}).status_code == 422
    cleared = client.patch(url, json={"transform": None})
    assert cleared.status_code == 200
    assert cleared.json()["transform"] is None


def test_preview_of_an_event_types_example(client: Any) -> None:
    created = client.post(
        "/api/v1/webhooks",
        json={
            "url": HOOK,
            "events": ["*"],
            "transform": {"preset": "slack"},
            "auth": {"type": "bearer", "token": "s3cret-token"},
        },
    ).json()
    response = client.post(
        f"/api/v1/webhooks/{created['id']}/preview", json={"event_type": "list.contact_added"}
    )
    assert response.status_code == 200, response.text
    shown = response.json()
    check_slack(shown["body"])
    assert "Newsletter" in shown["body"]["text"]
    headers = shown["headers"]
    assert headers["content-type"] == "application/json"
    assert "s3cret-token" not in response.text
    request = Received("/hook", headers, orjson.dumps(shown["body"]))
    assert verify(created["secret"], request) == shown["body"]


def test_preview_of_a_stored_message_without_transform(client: Any) -> None:
    created = client.post("/api/v1/webhooks", json={"url": HOOK, "events": ["*"]}).json()
    client.post("/api/v1/contacts", json={"email": "ada@example.com"})
    [message] = client.get("/api/v1/messages").json()["data"]
    response = client.post(
        f"/api/v1/webhooks/{created['id']}/preview", json={"message_id": message["id"]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["body"] == message["payload"]
    assert response.json()["headers"]["webhook-id"] == message["id"]


def test_preview_errors(client: Any) -> None:
    created = client.post(
        "/api/v1/webhooks",
        json={"url": HOOK, "events": ["*"], "transform": {"template": "{{ data.email }}"}},
    ).json()
    url = f"/api/v1/webhooks/{created['id']}/preview"
    assert client.post(url, json={"event_type": "no.such"}).status_code == 422
    assert client.post(url, json={"message_id": "msg_nothere"}).status_code == 404
    assert client.post(url, json={}).status_code == 422
    failing = client.post(url, json={"event_type": "contact.created"})
    assert failing.status_code == 422
    assert "did not render JSON" in failing.json()["error"]["message"]
    assert client.post("/api/v1/webhooks/999999/preview", json={}).status_code == 404


def test_transform_failed_is_a_client_error() -> None:
    from hookhub.outbound.transforms import TransformFailed

    assert issubclass(TransformFailed, HookhubError)
    assert TransformFailed.status == 422


def test_a_template_sees_the_messages_origin(client: Any) -> None:
    template = '{"by": {{ origin.type | tojson }}, "email": {{ data.email | tojson }}}'
    created = client.post(
        "/api/v1/webhooks",
        json={"url": HOOK, "events": ["*"], "transform": {"template": template}},
    ).json()
    client.post("/api/v1/contacts", json={"email": "ada@example.com"})
    [message] = client.get("/api/v1/messages").json()["data"]
    response = client.post(
        f"/api/v1/webhooks/{created['id']}/preview", json={"message_id": message["id"]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["body"] == {"by": "api", "email": "ada@example.com"}
