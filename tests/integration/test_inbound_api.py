"""The inbound webhooks API and the receive path's limits, as a client of each sees them.

``/api/v1/inbound-webhooks`` manages receive URLs (the token in the URL is the address: long and
random; the secret is shown once), their rules and their request log. ``POST /in/{token}``
refuses what it must before doing any work: unknown tokens, other methods, bodies over the limit
(without reading them), senders over their rate.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hookhub.api.app import create_app
from hookhub.services import Services, build_services
from tests.conftest import make_settings
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

STRIPE_EVENT = fixture("stripe_customer_created")
STRIPE_PRESETS = ["customer created", "customer updated", "checkout completed"]


@pytest.fixture
def sender(client: Any) -> Iterator[Any]:
    with raw_client(client) as raw:
        yield raw


def _event(number: int) -> bytes:
    """The Stripe fixture as another event (its own id, so no duplicate of the others)."""
    return STRIPE_EVENT.replace(b"evt_1NG8Du2eZvKYlo2CUI79vXWy", f"evt_{number}".encode())


def _send(sender: Any, hook: Hook, body: bytes = STRIPE_EVENT, **options: Any) -> Any:
    return sender.post(hook.path, content=body, headers=hook.sign(body, **options))


def _counted_within(client: Any, hook: Hook, seconds: float) -> int:
    """The webhook's count of rate-limited requests once it is stored (within ``seconds``)."""
    deadline = time.monotonic() + seconds
    while True:
        answer = client.get(f"/api/v1/inbound-webhooks/{hook.id}").json()
        counted = answer["unlogged_24h"]["rate_limited"]
        if counted or time.monotonic() > deadline:
            return int(counted)
        time.sleep(0.05)


def test_create_answers_an_unguessable_url_and_the_secret_once(client: Any) -> None:
    created = client.post("/api/v1/inbound-webhooks", json={"name": "Shop", "source": "stripe"})
    assert created.status_code == 201, created.text
    answer = created.json()
    assert answer["name"] == "Shop"
    assert answer["source"] == "stripe"
    assert answer["rules"] == client.get(f"/api/v1/inbound-webhooks/{answer['id']}").json()["rules"]
    assert [rule["name"] for rule in answer["rules"]] == STRIPE_PRESETS
    assert answer["secret"]

    url = answer["url"]
    assert url.startswith(client.app.state.services.settings.base_url + "/in/")
    token = url.rsplit("/", 1)[1]
    assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) * 8 >= 128
    other = create_hook(client, "stripe")
    assert other.token != token

    shown = client.get(f"/api/v1/inbound-webhooks/{answer['id']}").json()
    assert shown.get("secret") is None
    assert shown["url"] == url
    listed = client.get("/api/v1/inbound-webhooks").json()["data"]
    assert all(item.get("secret") is None for item in listed)

    standard = create_hook(client, "standard")
    assert (standard.secret or "").startswith("whsec_")
    mine = create_hook(client, "shopify", secret="shpss_mine")
    assert mine.secret == "shpss_mine"


BAD_BODIES = [
    ({"source": "mailchimp"}, ["body", "source"]),
    ({"name": "no source"}, ["body", "source"]),
    ({"source": "stripe", "secret": ""}, ["body", "secret"]),
    ({"source": "stripe", "rate_limit": 0}, ["body", "rate_limit"]),
    ({"source": "stripe", "token": "mine"}, ["body", "token"]),
]
UNVERIFIABLE = [
    {"source": "generic", "options": {"auth": "oauth"}},
    {"source": "generic", "options": {"auth": "bearer"}},
    {"source": "generic", "secret": "x", "options": {"encoding": "base32"}},
    {"source": "stripe", "options": {"tolerance": -1}},
    {"source": "standard", "options": {"tolerance": "long"}},
    {"source": "standard", "secret": "not base64!"},
]


def test_create_refuses_bad_bodies_and_settings_that_could_never_verify(client: Any) -> None:
    for spec, where in BAD_BODIES:
        response = client.post("/api/v1/inbound-webhooks", json=spec)
        assert response.status_code == 422, (spec, response.text)
        assert response.json()["error"]["details"][0]["loc"] == where, spec
    # A secret or options no request could ever verify with is the configuration's fault:
    # 422 now, rather than a 401 for every request the provider sends later.
    for spec in UNVERIFIABLE:
        response = client.post("/api/v1/inbound-webhooks", json=spec)
        assert response.status_code == 422, (spec, response.text)
        assert response.json()["error"]["code"] == "validation_error", spec
    assert client.get("/api/v1/inbound-webhooks").json()["data"] == []


def test_list_paginates(client: Any) -> None:
    ids = [create_hook(client, "typeform", name=f"form {i}").id for i in range(3)]
    first = client.get("/api/v1/inbound-webhooks", params={"limit": 2}).json()
    assert [w["id"] for w in first["data"]] == ids[:2]
    rest = client.get(
        "/api/v1/inbound-webhooks", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [w["id"] for w in rest["data"]] == ids[2:]
    assert rest["next_cursor"] is None


def test_patch_takes_effect_on_the_receive_path_at_once(client: Any, sender: Any) -> None:
    hook = create_hook(client, "stripe", secret="whsec_first")
    base = f"/api/v1/inbound-webhooks/{hook.id}"
    assert _send(sender, hook).status_code == 202

    renamed = client.patch(base, json={"name": "Renamed", "secret": "whsec_second"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Renamed"
    assert renamed.json().get("secret") is None
    assert _send(sender, hook, _event(2)).status_code == 401, "the old secret"
    hook.secret = "whsec_second"
    assert _send(sender, hook, _event(3)).status_code == 202

    assert client.patch(base, json={"enabled": False}).status_code == 200
    assert _send(sender, hook, _event(4)).status_code == 404
    assert client.patch(base, json={"enabled": True}).status_code == 200

    custom = [{"name": "only", "contact": {"email": "data.object.email"}}]
    assert client.patch(base, json={"rules": custom}).json()["rules"] == custom
    presets = client.patch(base, json={"rules": None}).json()["rules"]
    assert [rule["name"] for rule in presets] == STRIPE_PRESETS
    assert client.patch(base, json={"source": "shopify"}).status_code == 422
    assert client.patch("/api/v1/inbound-webhooks/999999", json={"name": "x"}).status_code == 404


def test_delete_makes_the_url_unknown(client: Any, sender: Any, services: Services) -> None:
    hook = create_hook(client, "stripe")
    assert _send(sender, hook).status_code == 202
    assert client.delete(f"/api/v1/inbound-webhooks/{hook.id}").status_code == 204

    assert client.get(f"/api/v1/inbound-webhooks/{hook.id}").status_code == 404
    assert client.get(f"/api/v1/inbound-webhooks/{hook.id}/requests").status_code == 404
    assert client.delete(f"/api/v1/inbound-webhooks/{hook.id}").status_code == 404
    gone = _send(sender, hook, _event(2))
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "not_found"
    assert services.inbound.process_backlog() == 0, "its backlog went with it"
    assert side_effects(services) == NOTHING


def test_a_webhook_deleted_while_another_process_knows_it_answers_404(
    client: Any, sender: Any, services: Services, db_url: str
) -> None:
    """Receivers cache webhooks by token for a few seconds; a request for one deleted meanwhile
    must not break the group commit it joins (its log entry would fail the foreign key)."""
    doomed = create_hook(client, "generic", name="doomed")
    kept = create_hook(client, "generic", name="kept")
    elsewhere = build_services(make_settings(db_url))
    try:
        with TestClient(create_app(elsewhere)) as other:
            for hook in (doomed, kept):
                assert other.post(hook.path, json={"email": "a@example.com"}).status_code == 202
            assert client.delete(f"/api/v1/inbound-webhooks/{doomed.id}").status_code == 204

            late = other.post(doomed.path, json={"email": "b@example.com"})
            assert late.status_code == 404, late.text
            assert other.post(kept.path, json={"email": "c@example.com"}).status_code == 202
            unsigned = other.post(doomed.path, content=b"{")
            assert unsigned.status_code == 404, "refused or not, it is gone"
    finally:
        elsewhere.close()
    assert services.inbound.process_backlog() == 2
    assert len(requests_of(client, kept)) == 2


def test_request_log_filters_and_pages(client: Any, sender: Any, services: Services) -> None:
    hook = create_hook(client, "stripe")
    other = create_hook(client, "stripe", name="other")
    accepted = _send(sender, hook).json()["request_id"]
    duplicate = _send(sender, hook).json()["request_id"]
    rejected = sender.post(
        hook.path, content=STRIPE_EVENT, headers={"Authorization": "Bearer hunter2"}
    ).json()["request_id"]
    services.inbound.process_backlog()

    everything = requests_of(client, hook)
    assert [r["id"] for r in everything] == [rejected, duplicate, accepted], "newest first"
    for status, expected in (("processed", [accepted]), ("duplicate", [duplicate])):
        assert [r["id"] for r in requests_of(client, hook, status=status)] == expected
    assert [r["id"] for r in requests_of(client, hook, status="rejected")] == [rejected]
    assert requests_of(client, hook, status="failed") == []
    assert (
        client.get(
            f"/api/v1/inbound-webhooks/{hook.id}/requests", params={"status": "lost"}
        ).status_code
        == 422
    )

    base = f"/api/v1/inbound-webhooks/{hook.id}/requests"
    page = client.get(base, params={"limit": 2}).json()
    assert [r["id"] for r in page["data"]] == [rejected, duplicate]
    rest = client.get(base, params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [r["id"] for r in rest["data"]] == [accepted]
    assert rest["next_cursor"] is None

    one = client.get(f"{base}/{rejected}").json()
    assert one["status"] == "rejected"
    assert one["http_status"] == 401
    assert one["headers"]["authorization"] == "[redacted]", "credentials never reach the log"
    assert one["body"] == STRIPE_EVENT.decode()
    assert one["received_at"].endswith("Z")
    assert client.get(f"{base}/999999").status_code == 404
    other_base = f"/api/v1/inbound-webhooks/{other.id}/requests"
    assert client.get(f"{other_base}/{accepted}").status_code == 404


def test_only_post_is_allowed_and_unknown_tokens_are_404(client: Any, sender: Any) -> None:
    hook = create_hook(client, "stripe")
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        response = sender.request(method, hook.path)
        assert response.status_code == 405, method
        assert response.headers["allow"] == "POST"
    for path in ("/in/" + "x" * 27, "/in/short", "/in/", "/in/" + "y" * 300, hook.path + "/x"):
        response = sender.post(path, content=STRIPE_EVENT, headers=hook.sign(STRIPE_EVENT))
        assert response.status_code == 404, path


def test_body_over_the_limit_is_413_and_logged_without_it(
    client: Any, sender: Any, services: Services
) -> None:
    hook = create_hook(client, "generic")
    limit = services.settings.max_body_bytes
    response = sender.post(hook.path, content=b"x" * (limit + 1))
    assert response.status_code == 413
    assert response.json()["error"]["details"] == {"limit": limit}
    at_limit = sender.post(hook.path, content=b'"' + b"x" * (limit - 2) + b'"')
    assert at_limit.status_code == 202, "the limit itself is allowed"

    too_big, fits = requests_of(client, hook)[::-1]
    assert (too_big["status"], too_big["http_status"], too_big["body_size"]) == (
        "rejected",
        413,
        None,
    )
    assert fits["status"] == "received"


class _Upload:
    """An ASGI ``receive`` offering a body in chunks, counting how many were taken."""

    def __init__(self, chunk: int, chunks: int) -> None:
        self.chunk, self.chunks, self.taken = chunk, chunks, 0

    async def __call__(self) -> dict[str, Any]:
        self.taken += 1
        more = self.taken < self.chunks
        return {"type": "http.request", "body": b"x" * self.chunk, "more_body": more}


def _call(app: Any, hook: Hook, headers: list[tuple[bytes, bytes]], upload: _Upload) -> int:
    scope = {
        "type": "http",
        "method": "POST",
        "path": hook.path,
        "headers": headers,
        "query_string": b"",
    }
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, upload, send))
    status: int = sent[0]["status"]
    return status


def test_oversize_body_is_refused_without_reading_past_the_limit(
    client: Any, services: Services
) -> None:
    """Straight to the ASGI app, so that what the receiver reads can be counted."""
    hook = create_hook(client, "generic")
    app = client.app
    chunk = 64 * 1024
    limit = services.settings.max_body_bytes

    declared = _Upload(chunk, chunks=100)
    length = [(b"content-length", str(chunk * 100).encode())]
    assert _call(app, hook, length, declared) == 413
    assert declared.taken == 0, "a Content-Length over the limit is enough"

    chunked = _Upload(chunk, chunks=100)
    assert _call(app, hook, [(b"transfer-encoding", b"chunked")], chunked) == 413
    assert chunked.taken == limit // chunk + 1, "reading stops at the chunk that crosses it"

    lying = _Upload(chunk, chunks=100)
    assert _call(app, hook, [(b"content-length", b"10")], lying) == 413
    assert lying.taken == limit // chunk + 1, "a Content-Length under the limit is not trusted"
    assert log_statuses(services) == ["rejected"] * 3


def test_rate_limit_answers_429_with_retry_after(
    client: Any, sender: Any, services: Services
) -> None:
    # One request per 100 s: the burst allows one, the next waits about 100 s.
    slow = create_hook(client, "stripe", rate_limit=0.01)
    free = create_hook(client, "stripe", name="unlimited")
    assert _send(sender, slow).status_code == 202
    limited = _send(sender, slow, _event(2))
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 90 <= int(limited.headers["retry-after"]) <= 101
    assert _send(sender, free).status_code == 202, "limits are per webhook"

    # Counted, not logged one row each (a flood must not fill the disk).
    entries = requests_of(client, slow)
    assert [(r["status"], r["http_status"]) for r in entries] == [("received", 202)]
    assert services.inbound.process_backlog() == 2  # one of each webhook
    assert _counted_within(client, slow, 3) == 1
