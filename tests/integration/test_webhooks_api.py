"""The outbound webhooks API over HTTP, on each backend: /webhooks, /deliveries, /messages and
/event-types as a client script sees them.

Calls that only change configuration are checked on their answers and on what later reads
return; calls whose point is a delivery (test sends, rotation, recover, retry) run a worker in
the test's event loop and check what a real receiver got.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from standardwebhooks.webhooks import WebhookVerificationError

from hookhub.core.catalog import CATALOG, EVENT_TYPES
from hookhub.services import Services
from hookhub.store.deliveries import DeliveryStore
from hookhub.store.endpoints import EndpointStore
from hookhub.store.schema import deliveries
from tests.support.delivery import (
    Script,
    api_client,
    create_contact,
    eventually,
    running_worker,
    tuned_services,
    verify,
)
from tests.support.receiver import running_receiver
from tests.support.schema_check import errors

API = "/api/v1"
TOKEN = "tok_SECRET_bearer_9f2c41"
PASSWORD = "pw_SECRET_basic_77ad0e"


def create(client: Any, **fields: Any) -> dict[str, Any]:
    body = {"url": "https://hooks.example.com/in", "events": ["contact.created"], **fields}
    response = client.post(f"{API}/webhooks", json=body)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def refused(response: Any, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    return error


# -- create -----------------------------------------------------------------------------------


def test_create_answers_an_id_and_a_fresh_secret(client: Any) -> None:
    first, second = create(client), create(client, description="second")
    assert isinstance(first["id"], int)
    assert first["id"] != second["id"]
    for answer in (first, second):
        assert answer["secret"].startswith("whsec_")
        assert len(base64.b64decode(answer["secret"].removeprefix("whsec_"))) >= 24
    assert first["secret"] != second["secret"]
    assert second["description"] == "second"
    assert first["enabled"] is True
    assert first["batched"] is False
    assert first["disabled_reason"] is None
    shown = client.get(f"{API}/webhooks/{first['id']}").json()
    assert "secret" not in shown or shown["secret"] is None
    assert {k: v for k, v in shown.items() if k != "secret"} == {
        k: v for k, v in first.items() if k != "secret"
    }
    assert client.get(f"{API}/webhooks/{first['id']}/secret").json() == {"secret": first["secret"]}


def test_a_secret_can_be_brought_but_must_be_strong(client: Any) -> None:
    own = "whsec_" + base64.b64encode(bytes(range(32))).decode()
    assert create(client, secret=own)["secret"] == own
    short = "whsec_" + base64.b64encode(b"x" * 16).decode()
    for bad in (short, "not-a-secret", "whsec_"):
        refused(
            client.post(
                f"{API}/webhooks", json={"url": "https://a.example", "events": ["*"], "secret": bad}
            )
        )


BAD_URLS = [
    "ftp://example.com/in",
    "javascript:alert(1)",
    "example.com/in",
    "",
    "http://user:pw@example.com/in",
    "http:///no-host",
    "https://example.com:99999/",
]


def test_url_must_be_http_or_https(client: Any) -> None:
    for url in BAD_URLS:
        refused(client.post(f"{API}/webhooks", json={"url": url, "events": ["*"]}))
    assert client.get(f"{API}/webhooks").json()["data"] == []


def test_events_come_from_the_catalog(client: Any) -> None:
    for events in (
        ["*"],
        ["contact.*"],
        ["contact.created", "email.clicked"],
        ["delivery.exhausted", "webhook.disabled", "inbound.failed"],
        ["email.*", "list.*", "event.tracked"],
    ):
        assert create(client, events=events)["events"] == events
    assert create(client, events=["contact.created", "contact.created"])["events"] == [
        "contact.created"
    ]
    error = refused(
        client.post(
            f"{API}/webhooks",
            json={"url": "https://a.example", "events": ["contact.created", "contact.exploded"]},
        )
    )
    assert "contact.exploded" in error["message"]
    assert error["details"]["unknown"] == ["contact.exploded"]
    for events in ([], ["nope.*"], ["contact"], ["CONTACT.CREATED"], [""], ["contact.created.*"]):
        refused(client.post(f"{API}/webhooks", json={"url": "https://a.example", "events": events}))


def test_a_family_of_only_operational_events_is_refused(client: Any) -> None:
    """``*`` and ``family.*`` never match operational events, so such a pattern matches nothing."""
    for family in ("webhook.*", "delivery.*", "inbound.*"):
        error = refused(
            client.post(f"{API}/webhooks", json={"url": "https://a.example", "events": [family]})
        )
        assert family in error["message"]


BAD_HEADERS: list[tuple[dict[str, str], str | None]] = [
    ({"webhook-signature": "v1,x"}, "webhook-signature"),
    ({"Webhook-Id": "msg_1"}, "Webhook-Id"),
    ({"Content-Type": "text/plain"}, "Content-Type"),
    ({"authorization": "Bearer x"}, "authorization"),
    ({"Host": "evil.example"}, "Host"),
    ({"User-Agent": "me"}, "User-Agent"),
    ({"Transfer-Encoding": "chunked"}, "Transfer-Encoding"),
    ({"X-Split": "a\r\nX-Injected: 1"}, "X-Split"),
    ({"X-Split": "line\nfeed"}, "X-Split"),
    ({"X-Split": "carriage\rreturn"}, "X-Split"),
    ({"X-Control": "a\x01b"}, "X-Control"),
    ({"X-Delete": "a\x7fb"}, "X-Delete"),
    ({"X-Nul": "a\x00b"}, "X-Nul"),
    ({"X Bad Name": "v"}, "X Bad Name"),
    ({"X-Bad:Name": "v"}, "X-Bad:Name"),
    ({"X-Bad\r\n": "v"}, None),
    ({f"X-{n}": "v" for n in range(21)}, None),
]


def test_headers_are_validated(client: Any) -> None:
    for headers, named in BAD_HEADERS:
        body = {"url": "https://a.example", "events": ["*"], "headers": headers}
        error = refused(client.post(f"{API}/webhooks", json=body))
        if named is not None:
            assert named in error["message"], (headers, error)
    assert client.get(f"{API}/webhooks").json()["data"] == []


def test_valid_headers_are_kept(client: Any) -> None:
    headers = {"X-Team": "growth", "X-Empty": "", "x-trace": "a=b; c", "X-Tab": "a\tb", "X-U": "é€"}
    answer = create(client, headers=headers)
    assert answer["headers"] == headers
    assert client.get(f"{API}/webhooks/{answer['id']}").json()["headers"] == headers


def test_auth_secrets_never_appear_in_answers(client: Any) -> None:
    bearer = create(client, auth={"type": "bearer", "token": TOKEN})
    basic = create(client, auth={"type": "basic", "username": "hookuser", "password": PASSWORD})
    assert bearer["auth"] == {"type": "bearer"}
    assert basic["auth"] == {"type": "basic", "username": "hookuser"}
    answers = [
        client.get(f"{API}/webhooks").text,
        client.get(f"{API}/webhooks/{bearer['id']}").text,
        client.get(f"{API}/webhooks/{basic['id']}").text,
        client.patch(f"{API}/webhooks/{bearer['id']}", json={"description": "x"}).text,
        client.patch(f"{API}/webhooks/{basic['id']}", json={"enabled": False}).text,
        client.post(f"{API}/webhooks/{bearer['id']}/rotate-secret").text,
        client.post(f"{API}/webhooks/{basic['id']}/rotate-secret").text,
        client.get(f"{API}/webhooks/{basic['id']}/secret").text,
        str(bearer),
        str(basic),
    ]
    for text in answers:
        assert TOKEN not in text
        assert PASSWORD not in text
    replaced = client.patch(
        f"{API}/webhooks/{basic['id']}", json={"auth": {"type": "bearer", "token": TOKEN + "2"}}
    )
    assert replaced.json()["auth"] == {"type": "bearer"}
    assert TOKEN not in replaced.text
    cleared = client.patch(f"{API}/webhooks/{basic['id']}", json={"auth": None})
    assert cleared.json()["auth"] is None


BAD_AUTH: list[Any] = [
    {"type": "bearer"},
    {"type": "bearer", "token": ""},
    {"type": "bearer", "token": "a\r\nb"},
    {"type": "basic", "username": "a:b", "password": "p"},
    {"type": "basic", "username": "", "password": "p"},
    {"type": "basic", "username": "u"},
    {"type": "digest", "token": "x"},
    {"token": "x"},
    "Bearer x",
]


def test_bad_auth_is_refused_without_echoing_it(client: Any) -> None:
    for auth in BAD_AUTH:
        response = client.post(
            f"{API}/webhooks", json={"url": "https://a.example", "events": ["*"], "auth": auth}
        )
        refused(response)
        assert "a\r\nb" not in response.text
    assert client.get(f"{API}/webhooks").json()["data"] == []


def test_batched_and_enabled_are_kept(client: Any) -> None:
    answer = create(client, batched=True, enabled=False)
    assert answer["batched"] is True
    assert answer["enabled"] is False
    shown = client.get(f"{API}/webhooks/{answer['id']}").json()
    assert (shown["batched"], shown["enabled"]) == (True, False)
    for field in ("batched", "enabled"):
        refused(
            client.post(
                f"{API}/webhooks",
                json={"url": "https://a.example", "events": ["*"], field: "maybe"},
            )
        )


# -- read, page, patch, delete ----------------------------------------------------------------


def test_list_paginates_in_creation_order(client: Any) -> None:
    made = [create(client, description=f"n{n}")["id"] for n in range(5)]
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get(f"{API}/webhooks", params=params).json()
        seen.extend(item["id"] for item in page["data"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made
    assert pages == 3
    refused(client.get(f"{API}/webhooks", params={"cursor": "garbage!"}), 400)
    refused(client.get(f"{API}/webhooks", params={"limit": 0}))


def test_patch_changes_what_it_names(client: Any) -> None:
    answer = create(client, headers={"X-A": "1"}, description="keep")
    wid = answer["id"]
    patched = client.patch(
        f"{API}/webhooks/{wid}",
        json={"url": "https://other.example/hook", "events": ["list.*", "contact.deleted"]},
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["url"] == "https://other.example/hook"
    assert body["events"] == ["list.*", "contact.deleted"]
    assert body["description"] == "keep"
    assert body["headers"] == {"X-A": "1"}
    assert client.get(f"{API}/webhooks/{wid}").json() == body
    before = client.get(f"{API}/webhooks/{wid}").json()
    refused(client.patch(f"{API}/webhooks/{wid}", json={"url": "gopher://x"}))
    refused(client.patch(f"{API}/webhooks/{wid}", json={"events": ["nope"]}))
    refused(client.patch(f"{API}/webhooks/{wid}", json={"headers": {"Host": "x"}}))
    refused(client.patch(f"{API}/webhooks/{wid}", json={"secret": "whsec_x"}))
    assert client.get(f"{API}/webhooks/{wid}").json() == before


def test_patch_with_nulls_changes_nothing_it_cannot_clear(client: Any) -> None:
    answer = create(client, batched=True)
    wid = answer["id"]
    for field in ("batched", "enabled"):
        response = client.patch(f"{API}/webhooks/{wid}", json={field: None})
        assert response.status_code == 200, response.text
    shown = client.get(f"{API}/webhooks/{wid}").json()
    assert (shown["batched"], shown["enabled"]) == (True, True)
    assert client.patch(f"{API}/webhooks/{wid}", json={"headers": None}).json()["headers"] == {}


def test_enabling_clears_the_disabled_reason(client: Any, services: Services) -> None:
    wid = create(client)["id"]
    off = client.patch(f"{API}/webhooks/{wid}", json={"enabled": False}).json()
    assert off["enabled"] is False
    assert off["disabled_reason"]
    on = client.patch(f"{API}/webhooks/{wid}", json={"enabled": True}).json()
    assert (on["enabled"], on["disabled_reason"]) == (True, None)
    with services.db.write() as conn:  # as the worker does when an endpoint fails too long
        store = EndpointStore(conn)
        store.set_failing(wid, time.time() - 100)
        assert store.disable(wid, "failing since yesterday")
    shown = client.get(f"{API}/webhooks/{wid}").json()
    assert (shown["enabled"], shown["disabled_reason"]) == (False, "failing since yesterday")
    assert shown["failing_since"] is not None
    on = client.patch(f"{API}/webhooks/{wid}", json={"enabled": True}).json()
    assert (on["enabled"], on["disabled_reason"], on["failing_since"]) == (True, None, None)


def test_delete_removes_the_webhook(client: Any) -> None:
    wid = create(client)["id"]
    client.post(f"{API}/webhooks/{wid}/test", json={"event_type": "contact.created"})
    assert client.delete(f"{API}/webhooks/{wid}").status_code == 204
    refused(client.get(f"{API}/webhooks/{wid}"), 404)
    refused(client.get(f"{API}/webhooks/{wid}/deliveries"), 404)
    refused(client.delete(f"{API}/webhooks/{wid}"), 404)
    assert client.get(f"{API}/webhooks").json()["data"] == []


UNKNOWN: list[tuple[str, str, Any]] = [
    ("GET", "/webhooks/999", None),
    ("GET", "/webhooks/999/secret", None),
    ("PATCH", "/webhooks/999", {"description": "x"}),
    ("DELETE", "/webhooks/999", None),
    ("POST", "/webhooks/999/rotate-secret", None),
    ("POST", "/webhooks/999/test", {"event_type": "contact.created"}),
    ("GET", "/webhooks/999/deliveries", None),
    ("POST", "/webhooks/999/recover", {"since": "2026-01-01T00:00:00Z"}),
    ("POST", "/deliveries/999/retry", None),
    ("GET", "/messages/msg_nope", None),
]
INVALID: list[tuple[str, str, Any]] = [
    ("GET", "/webhooks/0", None),
    ("GET", "/webhooks/abc", None),
    ("GET", f"/webhooks/{2**63}", None),
    ("POST", "/deliveries/-1/retry", None),
    ("POST", "/webhooks/1/test", {"event_type": "contact.exploded"}),
    ("POST", "/webhooks/1/test", {}),
    ("POST", "/webhooks/1/recover", {}),
    ("POST", "/webhooks/1/recover", {"since": "yesterday"}),
    (
        "POST",
        "/webhooks/1/recover",
        {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
    ),
    ("POST", "/webhooks/1/rotate-secret", {"secret": "whsec_short"}),
    ("GET", "/webhooks/1/deliveries?status=done", None),
]


def test_unknown_ids_are_404_and_bad_requests_422(client: Any) -> None:
    for method, path, body in UNKNOWN:
        assert refused(client.request(method, API + path, json=body), 404)["code"] == "not_found"
    create(client)
    for method, path, body in INVALID:
        response = client.request(method, API + path, json=body)
        assert response.status_code == 422, (method, path, body, response.text)
        refused(response)


CALLS = [
    ("GET", "/webhooks"),
    ("POST", "/webhooks"),
    ("GET", "/webhooks/1"),
    ("GET", "/webhooks/1/secret"),
    ("PATCH", "/webhooks/1"),
    ("DELETE", "/webhooks/1"),
    ("POST", "/webhooks/1/rotate-secret"),
    ("POST", "/webhooks/1/test"),
    ("GET", "/webhooks/1/deliveries"),
    ("POST", "/webhooks/1/recover"),
    ("POST", "/deliveries/1/retry"),
    ("GET", "/messages"),
    ("GET", "/messages/msg_1"),
    ("GET", "/event-types"),
]


def test_every_call_needs_an_api_key(client: Any, services: Services) -> None:
    secret = create(client)["secret"]
    with api_client(services, key=None) as anonymous, api_client(services, key="hh_no") as wrong:
        for method, path in CALLS:
            response = anonymous.request(method, API + path, json={})
            assert refused(response, 401)["code"] == "unauthorized", (method, path)
            assert secret not in response.text
            refused(wrong.request(method, API + path, json={}), 401)
    assert client.get(f"{API}/webhooks/1/secret").json()["secret"] == secret


# -- secrets ----------------------------------------------------------------------------------


def test_rotate_secret_answers_the_new_secret(client: Any) -> None:
    answer = create(client)
    wid = answer["id"]
    rotated = client.post(f"{API}/webhooks/{wid}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new.startswith("whsec_")
    assert new != answer["secret"]
    assert client.get(f"{API}/webhooks/{wid}/secret").json()["secret"] == new
    own = "whsec_" + base64.b64encode(b"k" * 32).decode()
    again = client.post(f"{API}/webhooks/{wid}/rotate-secret", json={"secret": own})
    assert again.json()["secret"] == own
    assert client.get(f"{API}/webhooks/{wid}/secret").json()["secret"] == own


# -- event types ------------------------------------------------------------------------------


def test_event_types_serve_the_catalog_with_valid_examples(client: Any) -> None:
    response = client.get(f"{API}/event-types")
    assert response.status_code == 200
    served = {item["name"]: item for item in response.json()["data"]}
    assert set(served) == set(CATALOG)
    assert len(served) == len(EVENT_TYPES)
    for name, item in served.items():
        assert item["description"].strip(), name
        schema, example = item["schema"], item["example"]
        assert schema["type"] == "object"
        assert schema["properties"]["type"] == {"const": name}
        assert example["type"] == name
        assert errors(example, schema) == [], name
        about_contact = name == "automation.webhook"  # operational, but about one contact
        if (item["operational"] and not about_contact) or name == "list.deleted":
            assert "contact_id" not in example["data"], name
        else:
            assert {"contact_id", "email"} <= set(example["data"]), name
        wrong = {
            **example,
            "data": {**example["data"], schema["properties"]["data"]["required"][0]: [None]},
        }
        assert errors(wrong, schema), f"{name}: the checker must see a wrong type"
    operational = {name for name, item in served.items() if item["operational"]}
    assert operational == {
        "webhook.disabled",
        "delivery.exhausted",
        "inbound.failed",
        "automation.webhook",
    }


# -- calls whose point is a delivery ----------------------------------------------------------


@pytest.fixture
def tuned(db_url: str) -> Iterator[Callable[..., tuple[Services, Any]]]:
    """Services with settings overrides and an API client on them."""
    with contextlib.ExitStack() as stack:

        def make(**overrides: Any) -> tuple[Services, Any]:
            settings = {"poll_interval": 0.1, "retry_jitter": 0, "retry_min_backoff": 0.1}
            services = stack.enter_context(tuned_services(db_url, **settings, **overrides))
            return services, stack.enter_context(api_client(services))

        yield make


async def call(client: Any, method: str, path: str, **kwargs: Any) -> Any:
    """An API call from async code, off the event loop the receivers run on."""
    return await asyncio.to_thread(client.request, method, API + path, **kwargs)


def _statuses(client: Any, wid: int) -> list[str]:
    return [d["status"] for d in client.get(f"{API}/webhooks/{wid}/deliveries").json()["data"]]


async def test_test_send_delivers_the_example_to_that_endpoint_only(tuned: Any) -> None:
    services, client = tuned()
    async with (
        running_receiver() as target,
        running_receiver() as bystander,
        running_worker(services),
    ):
        chosen = create(client, url=target.url, events=["list.contact_added"])
        create(client, url=bystander.url, events=["*"])
        response = await call(
            client, "POST", f"/webhooks/{chosen['id']}/test", json={"event_type": "email.clicked"}
        )
        assert response.status_code == 202, response.text
        sent = response.json()
        await target.wait_for(1)
        await asyncio.sleep(0.5)
    assert bystander.requests == []
    [request] = target.requests
    payload = verify(chosen["secret"], request)
    assert payload["type"] == "email.clicked"
    assert payload["data"] == CATALOG["email.clicked"].example
    assert request.headers["webhook-id"] == sent["message_id"]
    message = (await call(client, "GET", f"/messages/{sent['message_id']}")).json()
    assert message["payload"] == payload
    [delivery] = message["deliveries"]
    assert delivery["id"] == sent["delivery_id"]
    assert delivery["webhook_id"] == chosen["id"]


async def test_old_secret_signs_during_the_overlap_only(tuned: Any) -> None:
    overlap = 2.5
    services, client = tuned(secret_rotation_overlap=overlap)
    async with running_receiver() as receiver, running_worker(services):
        answer = create(client, url=receiver.url, events=["contact.created"])
        rotated = (await call(client, "POST", f"/webhooks/{answer['id']}/rotate-secret")).json()
        # Read after the answer: the server's rotation time is no later, however slow the call
        # (taken before it, a commit slower than the 0.3 s margin left "after" in the overlap).
        rotated_at = time.monotonic()
        create_contact(services, "during@example.com")
        await receiver.wait_for(1)
        await asyncio.sleep(rotated_at + overlap + 0.3 - time.monotonic())
        create_contact(services, "after@example.com")
        await receiver.wait_for(2)
    during, after = receiver.requests
    assert verify(answer["secret"], during)["data"]["email"] == "during@example.com"
    assert verify(rotated["secret"], during)
    assert len(during.headers["webhook-signature"].split()) == 2
    assert verify(rotated["secret"], after)["data"]["email"] == "after@example.com"
    assert len(after.headers["webhook-signature"].split()) == 1
    with pytest.raises(WebhookVerificationError):
        verify(answer["secret"], after)


async def test_deliveries_list_states_and_attempts(tuned: Any) -> None:
    services, client = tuned(retry_schedule="0.2")
    async with (
        running_receiver(Script(statuses=[500])) as flaky,
        running_worker(services),
    ):
        webhook = create(client, url=flaky.url, events=["contact.created"])
        wid = webhook["id"]
        create_contact(services, "one@example.com")  # 500, then 200
        create_contact(services, "two@example.com")
        await flaky.wait_for(3)

        def settled() -> bool:
            data = client.get(f"{API}/webhooks/{wid}/deliveries").json()["data"]
            return [d["status"] for d in data] == ["succeeded", "succeeded"]

        await eventually(settled)
    everything = client.get(f"{API}/webhooks/{wid}/deliveries").json()
    assert everything["next_cursor"] is None
    by_attempts = sorted(everything["data"], key=lambda d: d["attempt_count"])
    assert [d["attempt_count"] for d in by_attempts] == [1, 2]
    retried = by_attempts[1]
    assert [a["status_code"] for a in retried["attempts"]] == [500, 200]
    for attempt in retried["attempts"]:
        assert set(attempt) >= {"at", "status_code", "duration_ms", "error"}
        assert "response_body" not in attempt, "lists leave response bodies out"
        datetime.fromisoformat(attempt["at"].replace("Z", "+00:00"))
    one = client.get(f"{API}/deliveries/{retried['id']}").json()
    assert [set(a) >= {"at", "status_code", "response_body"} for a in one["attempts"]] == [True] * 2
    assert retried["webhook_id"] == wid
    assert retried["next_attempt_at"] is None
    filtered = client.get(f"{API}/webhooks/{wid}/deliveries", params={"status": "succeeded"})
    assert len(filtered.json()["data"]) == 2
    for status in ("pending", "failed", "exhausted"):
        none = client.get(f"{API}/webhooks/{wid}/deliveries", params={"status": status})
        assert none.json()["data"] == []
    first_page = client.get(f"{API}/webhooks/{wid}/deliveries", params={"limit": 1}).json()
    second_page = client.get(
        f"{API}/webhooks/{wid}/deliveries",
        params={"limit": 1, "cursor": first_page["next_cursor"]},
    ).json()
    assert {first_page["data"][0]["id"], second_page["data"][0]["id"]} == {
        d["id"] for d in everything["data"]
    }


async def test_recover_requeues_failures_and_backfills_what_was_missed(tuned: Any) -> None:
    services, client = tuned(retry_schedule="0.1")
    script = Script(then=500)
    async with running_receiver(script) as receiver, running_worker(services):
        start = datetime.now(UTC) - timedelta(seconds=1)
        webhook = create(client, url=receiver.url, events=["contact.created", "delivery.exhausted"])
        wid = webhook["id"]
        create_contact(services, "a@example.com")
        create_contact(services, "b@example.com")

        def exhausted() -> bool:
            data = client.get(f"{API}/webhooks/{wid}/deliveries").json()["data"]
            return [d["status"] for d in data] == ["exhausted", "exhausted"]

        await eventually(exhausted)
        client.patch(f"{API}/webhooks/{wid}", json={"enabled": False})
        create_contact(services, "while-off@example.com")
        client.patch(f"{API}/webhooks/{wid}", json={"enabled": True})
        script.then = 200
        answer = await call(
            client, "POST", f"/webhooks/{wid}/recover", json={"since": start.isoformat()}
        )
        assert answer.status_code == 202, answer.text
        # Its own delivery.exhausted events are not backfilled: an endpoint never gets those.
        assert answer.json() == {"requeued": 2, "backfilled": 1}
        await receiver.wait_for(4 + 3)
        await eventually(lambda: sorted(_statuses(client, wid)) == ["succeeded"] * 3)
        again = await call(
            client, "POST", f"/webhooks/{wid}/recover", json={"since": start.isoformat()}
        )
        assert again.json() == {"requeued": 0, "backfilled": 0}
    delivered = [verify(webhook["secret"], r) for r in receiver.requests[-3:]]
    assert sorted(p["data"]["email"] for p in delivered) == [
        "a@example.com",
        "b@example.com",
        "while-off@example.com",
    ]
    assert {p["type"] for p in delivered} == {"contact.created"}
    future = datetime.now(UTC) + timedelta(hours=1)
    empty = await call(
        client,
        "POST",
        f"/webhooks/{wid}/recover",
        json={"since": start.isoformat(), "until": start.isoformat()},
    )
    refused(empty)
    later = await call(
        client,
        "POST",
        f"/webhooks/{wid}/recover",
        json={"since": future.isoformat(), "until": (future + timedelta(1)).isoformat()},
    )
    assert later.json() == {"requeued": 0, "backfilled": 0}


async def test_retry_sends_a_delivery_again(tuned: Any) -> None:
    services, client = tuned(retry_schedule="")
    script = Script(then=500)
    async with running_receiver(script) as receiver, running_worker(services):
        webhook = create(client, url=receiver.url, events=["contact.created"])
        create_contact(services, "retry@example.com")
        await eventually(lambda: _statuses(client, webhook["id"]) == ["exhausted"])
        [delivery] = client.get(f"{API}/webhooks/{webhook['id']}/deliveries").json()["data"]
        script.then = 200
        response = await call(client, "POST", f"/deliveries/{delivery['id']}/retry")
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "pending"
        assert response.json()["id"] == delivery["id"]
        await receiver.wait_for(2)
        await eventually(lambda: _statuses(client, webhook["id"]) == ["succeeded"])
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    message = client.get(f"{API}/messages/{delivery['message_id']}").json()
    [state] = message["deliveries"]
    assert [a["status_code"] for a in state["attempts"]] == [500, 200]


def test_retry_of_a_delivery_in_flight_is_refused(tuned: Any) -> None:
    """A worker holds the delivery (its attempt may be on the wire): requeuing it would let a
    second worker send it at the same time. Once the lease has ended, retry works."""
    services, client = tuned()
    webhook = create(client, url="https://in-flight.example", events=["contact.created"])
    create_contact(services, "in-flight@example.com")
    [delivery] = client.get(f"{API}/webhooks/{webhook['id']}/deliveries").json()["data"]
    now = time.time()
    with services.db.write() as conn:
        [claimed] = DeliveryStore(conn).claim_for_endpoint(
            endpoint_id=webhook["id"], now=now, lease_until=now + 60, owner="w-1", limit=10
        )
    assert claimed.id == delivery["id"]

    busy = client.post(f"{API}/deliveries/{delivery['id']}/retry")
    assert busy.status_code == 409, busy.text
    assert busy.json()["error"]["code"] == "conflict"
    assert busy.json()["error"]["details"] == {"delivery_id": delivery["id"]}
    with services.db.read() as conn:
        held = DeliveryStore(conn).get(delivery["id"])
    assert held is not None
    assert held.status == "pending"  # untouched, still the worker's
    assert held.in_flight

    with services.db.write() as conn:  # the worker died: its lease ran out
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id == delivery["id"])
            .values(next_attempt_at=now - 1)
        )
    retried = client.post(f"{API}/deliveries/{delivery['id']}/retry")
    assert retried.status_code == 202, retried.text
    assert retried.json()["status"] == "pending"


async def test_message_shows_each_endpoints_state(tuned: Any) -> None:
    services, client = tuned(retry_schedule="")
    async with (
        running_receiver() as good,
        running_receiver(Script(then=418)) as bad,
        running_worker(services),
    ):
        ok = create(client, url=good.url, events=["contact.*"])
        broken = create(client, url=bad.url, events=["*"])
        create(client, url="https://never.example", events=["list.*"])
        create_contact(services, "m@example.com")
        await good.wait_for(1)
        await bad.wait_for(1)
        [listed] = client.get(f"{API}/messages", params={"event_type": "contact.created"}).json()[
            "data"
        ]

        def both_settled() -> dict[str, Any] | None:
            message: dict[str, Any] = client.get(f"{API}/messages/{listed['id']}").json()
            states = {d["webhook_id"]: d["status"] for d in message["deliveries"]}
            return message if states == {ok["id"]: "succeeded", broken["id"]: "exhausted"} else None

        message = await eventually(both_settled)
    assert message["type"] == "contact.created"
    assert message["payload"] == good.requests[0].json()
    assert good.requests[0].body == bad.requests[0].body
    by_webhook = {d["webhook_id"]: d for d in message["deliveries"]}
    assert [a["status_code"] for a in by_webhook[ok["id"]]["attempts"]] == [200]
    assert [a["status_code"] for a in by_webhook[broken["id"]]["attempts"]] == [418]
    assert by_webhook[broken["id"]]["attempt_count"] == 1


# -- the OpenAPI document tells the truth -----------------------------------------------------


def documented_fields(doc: dict[str, Any], path: str, method: str, status: int) -> set[str]:
    """The properties /openapi.json promises for an answer (of a page: of its items)."""

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    operation = doc["paths"][API + path][method]
    schema = resolve(operation["responses"][str(status)]["content"]["application/json"]["schema"])
    if set(schema["properties"]) == {"data", "next_cursor"}:
        schema = resolve(schema["properties"]["data"]["items"])
    return set(schema["properties"])


def test_answers_carry_exactly_the_documented_fields(client: Any) -> None:
    doc = client.get("/openapi.json").json()

    def check(answer: dict[str, Any], path: str, method: str, status: int) -> None:
        promised = documented_fields(doc, path, method, status)
        assert set(answer) <= promised, (path, set(answer) - promised)
        assert promised - set(answer) <= {"secret"}, (path, promised - set(answer))

    made = client.post(f"{API}/webhooks", json={"url": "https://a.example", "events": ["*"]})
    check(made.json(), "/webhooks", "post", 201)
    wid = made.json()["id"]
    check(client.get(f"{API}/webhooks").json()["data"][0], "/webhooks", "get", 200)
    check(client.get(f"{API}/webhooks/{wid}").json(), "/webhooks/{webhook_id}", "get", 200)
    patched = client.patch(f"{API}/webhooks/{wid}", json={"description": "d"}).json()
    check(patched, "/webhooks/{webhook_id}", "patch", 200)
    rotated = client.post(f"{API}/webhooks/{wid}/rotate-secret").json()
    check(rotated, "/webhooks/{webhook_id}/rotate-secret", "post", 200)
    secret = client.get(f"{API}/webhooks/{wid}/secret").json()
    check(secret, "/webhooks/{webhook_id}/secret", "get", 200)
    sent = client.post(f"{API}/webhooks/{wid}/test", json={"event_type": "event.tracked"}).json()
    check(sent, "/webhooks/{webhook_id}/test", "post", 202)
    [delivery] = client.get(f"{API}/webhooks/{wid}/deliveries").json()["data"]
    check(delivery, "/webhooks/{webhook_id}/deliveries", "get", 200)
    retried = client.post(f"{API}/deliveries/{delivery['id']}/retry").json()
    check(retried, "/deliveries/{delivery_id}/retry", "post", 202)
    message = client.get(f"{API}/messages/{sent['message_id']}").json()
    check(message, "/messages/{message_id}", "get", 200)
    check(message["deliveries"][0], "/webhooks/{webhook_id}/deliveries", "get", 200)
    recovered = client.post(
        f"{API}/webhooks/{wid}/recover", json={"since": "2020-01-01T00:00:00Z"}
    ).json()
    check(recovered, "/webhooks/{webhook_id}/recover", "post", 202)
