"""Dashboard pages of outbound endpoints, through the real app with a signed-in session.

Every page renders; create (event picker, filter, transform), the draft preview, reveal and
rotate, test send, retry, recover and enable/disable call the same service as the API's routes;
a viewer is refused every change (403) and never sees a secret; bad input re-renders the form
with the error next to the field (422); an unknown id is a 404 page.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp import web

from hookhub.services import Services
from tests.support.dashboard_hooks import form_post, text_of
from tests.support.delivery import running_worker
from tests.support.receiver import Received, running_receiver

URL = "http://127.0.0.1:9/hook"


@pytest.fixture
def admin(dashboard_client: Any) -> Any:
    return dashboard_client("admin")


@pytest.fixture
def viewer(dashboard_client: Any) -> Any:
    return dashboard_client("viewer")


def _endpoint(services: Services, **spec: Any) -> Any:
    return services.endpoints.create({"url": URL, "events": ["contact.*"], **spec})


def test_every_outbound_page_renders(admin: Any, services: Services) -> None:
    endpoint = _endpoint(services, description="CRM sync")
    _, delivery_id = services.endpoints.send_test(endpoint.id, "contact.created")
    pages = {
        "/outbound": [URL, "CRM sync", "1 pending"],
        "/outbound/new": ["contact.created", "contact.*", "slack", "Event types"],
        f"/outbound/{endpoint.id}": [URL, f"#{delivery_id}", "Reveal the secret", "Recover"],
        f"/outbound/{endpoint.id}?status=pending": [f"#{delivery_id}"],
        f"/outbound/{endpoint.id}?status=succeeded": ["No delivery with status succeeded"],
        f"/outbound/{endpoint.id}/deliveries": [f"#{delivery_id}"],
        f"/outbound/{endpoint.id}/edit": [URL, "Save"],
        f"/outbound/{endpoint.id}/deliveries/{delivery_id}": ["contact.created", "Retry now"],
    }
    for path, expected in pages.items():
        page = admin.get(path)
        assert page.status_code == 200, (path, page.text[:500])
        assert page.headers["content-type"].startswith("text/html")
        shown = text_of(page)
        for text in expected:
            assert text in shown, (path, text)
        assert endpoint.secret not in page.text, path


def test_create_with_the_event_picker_filter_and_transform(admin: Any, services: Services) -> None:
    created = form_post(
        admin,
        "/outbound",
        {
            "url": URL,
            "description": "Team chat",
            "events": ["contact.*", "list.contact_added"],
            "filter": "data.email != null",
            "transform_kind": "preset",
            "transform_preset": "slack",
            "headers": '{"X-Team": "growth"}',
        },
    )
    assert created.status_code == 200, created.text[:500]
    assert "Endpoint created" in created.text
    [endpoint] = services.endpoints.page(after_id=None, limit=10)
    assert endpoint.url == URL
    assert endpoint.event_types == ["contact.*", "list.contact_added"]
    assert endpoint.filter == "data.email != null"
    assert endpoint.transform == {"preset": "slack"}
    assert endpoint.headers == {"X-Team": "growth"}

    edited = form_post(
        admin,
        f"/outbound/{endpoint.id}/edit",
        {"url": URL, "events": ["contact.created"], "transform_kind": "none"},
    )
    assert "Saved." in edited.text
    endpoint = services.endpoints.get(endpoint.id)
    assert (endpoint.event_types, endpoint.filter, endpoint.transform) == (
        ["contact.created"],
        None,
        None,
    )


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"url": "ftp://example.com/x", "events": ["*"]}, "url", "url"),
        ({"url": URL}, "events", "Pick at least one event type"),
        ({"url": URL, "events": ["nope.*"]}, "events", "Unknown event types"),
        ({"url": URL, "events": ["*"], "filter": "a..b"}, "filter", "JMESPath"),
        (
            {"url": URL, "events": ["*"], "transform_kind": "template", "transform_template": "{{"},
            "transform",
            "does not compile",
        ),
        ({"url": URL, "events": ["*"], "headers": "{nope"}, "headers", "Not valid JSON"),
        ({"url": URL, "events": ["*"], "headers": '{"Host": "x"}'}, "headers", "set by Hookhub"),
    ],
)
def test_bad_endpoint_input_is_a_422_next_to_the_field(
    admin: Any, services: Services, form: dict[str, Any], field: str, message: str
) -> None:
    answer = form_post(admin, "/outbound", {"transform_kind": "none", **form})
    assert answer.status_code == 422, answer.text[:300]
    assert f'id="{field}-error"' in answer.text
    assert message.lower() in text_of(answer).lower()
    assert services.endpoints.page(after_id=None, limit=10) == []


def test_draft_preview_shows_the_transformed_body_and_the_filter(admin: Any) -> None:
    form = {
        "url": URL,
        "events": ["contact.*"],
        "transform_kind": "preset",
        "transform_preset": "slack",
        "preview_event": "contact.created",
    }
    shown = form_post(admin, "/outbound/preview", form, htmx=True)
    assert shown.status_code == 200
    assert "it would be sent as below" in shown.text
    assert "blocks" in shown.text
    assert "webhook-signature" in shown.text

    filtered = form_post(
        admin, "/outbound/preview", {**form, "filter": "data.email == 'someone@else'"}, htmx=True
    )
    assert "the filter does not match it" in text_of(filtered)
    other = form_post(admin, "/outbound/preview", {**form, "preview_event": "email.sent"})
    assert "not among the picked event types" in text_of(other)
    broken = form_post(
        admin,
        "/outbound/preview",
        {**form, "transform_kind": "template", "transform_template": "{% for %}"},
    )
    assert broken.status_code == 200
    assert "transform.template" in text_of(broken)


def test_saved_endpoint_preview_reveal_and_rotate(admin: Any, services: Services) -> None:
    endpoint = _endpoint(services, auth={"type": "bearer", "token": "sekrit-token"})
    shown = form_post(
        admin, f"/outbound/{endpoint.id}/preview", {"preview_event": "contact.created"}
    )
    assert "contact.created" in shown.text
    assert "sekrit-token" not in shown.text

    revealed = form_post(admin, f"/outbound/{endpoint.id}/secret", {}, htmx=True)
    assert revealed.status_code == 200
    assert endpoint.secret in revealed.text
    rotated = form_post(admin, f"/outbound/{endpoint.id}/rotate", {})
    new_secret = services.endpoints.get(endpoint.id).secret
    assert new_secret != endpoint.secret
    assert new_secret in rotated.text
    assert "Secret rotated" in rotated.text
    assert new_secret not in admin.get(f"/outbound/{endpoint.id}").text


def test_test_send_recover_and_enable(admin: Any, services: Services) -> None:
    endpoint = _endpoint(services)
    sent = form_post(admin, f"/outbound/{endpoint.id}/test", {"event_type": "contact.updated"})
    assert sent.status_code == 200
    assert "Test message queued" in sent.text
    [delivery] = services.endpoints.deliveries(endpoint.id, status=None, before_id=None, limit=5)
    assert f"/outbound/{endpoint.id}/deliveries/{delivery.id}" in str(sent.url)
    bad = form_post(admin, f"/outbound/{endpoint.id}/test", {"event_type": "nope"})
    assert bad.status_code == 422
    assert 'id="event_type-error"' in bad.text

    retried = form_post(admin, f"/outbound/{endpoint.id}/deliveries/{delivery.id}/retry", {})
    assert "Retry queued" in retried.text

    recovered = form_post(admin, f"/outbound/{endpoint.id}/recover", {"since": "2020-01-01T00:00"})
    assert recovered.status_code == 200
    assert "Recovered:" in recovered.text
    for form, field in (
        ({"since": ""}, "since"),
        ({"since": "soon"}, "since"),
        ({"since": "0001-01-01T00:00+01:00"}, "since"),
        ({"since": "2030-01-02T00:00", "until": "2030-01-01T00:00"}, "until"),
    ):
        refused = form_post(admin, f"/outbound/{endpoint.id}/recover", form)
        assert refused.status_code == 422, form
        assert f'id="{field}-error"' in refused.text, form

    form_post(admin, f"/outbound/{endpoint.id}/enabled", {"enabled": "false"})
    assert services.endpoints.get(endpoint.id).enabled is False
    form_post(admin, f"/outbound/{endpoint.id}/enabled", {"enabled": "true"})
    assert services.endpoints.get(endpoint.id).enabled is True


async def test_a_delivery_page_shows_its_attempts(admin: Any, services: Services) -> None:
    async def refuse(_request: Received) -> web.StreamResponse:
        return web.Response(status=503, text="down for <maintenance>")

    async with running_receiver(refuse) as receiver, running_worker(services):
        endpoint = services.endpoints.create({"url": receiver.url, "events": ["*"]})
        _, delivery_id = services.endpoints.send_test(endpoint.id, "contact.created")
        deadline = time.monotonic() + 20
        while not services.endpoints.delivery(delivery_id).attempts:
            assert time.monotonic() < deadline, "no attempt recorded"
            await asyncio.sleep(0.05)
    page = await asyncio.to_thread(admin.get, f"/outbound/{endpoint.id}/deliveries/{delivery_id}")
    assert page.status_code == 200
    assert "503" in page.text
    assert "down for &lt;maintenance&gt;" in page.text, "response bodies are escaped"
    assert " ms" in page.text


def test_viewer_sees_but_cannot_change(viewer: Any, services: Services) -> None:
    endpoint = _endpoint(services)
    _, delivery_id = services.endpoints.send_test(endpoint.id, "contact.created")
    for path in (
        "/outbound",
        f"/outbound/{endpoint.id}",
        f"/outbound/{endpoint.id}/deliveries/{delivery_id}",
    ):
        page = viewer.get(path)
        assert page.status_code == 200, path
        assert "Reveal the secret" not in page.text
        assert "Retry now" not in page.text
        assert endpoint.secret not in page.text
    changes = {
        "/outbound": {"url": URL, "events": ["*"], "transform_kind": "none"},
        f"/outbound/{endpoint.id}/edit": {"url": URL, "events": ["*"]},
        f"/outbound/{endpoint.id}/secret": {},
        f"/outbound/{endpoint.id}/rotate": {},
        f"/outbound/{endpoint.id}/test": {"event_type": "contact.created"},
        f"/outbound/{endpoint.id}/recover": {"since": "2020-01-01T00:00"},
        f"/outbound/{endpoint.id}/enabled": {"enabled": "false"},
        f"/outbound/{endpoint.id}/deliveries/{delivery_id}/retry": {},
        f"/outbound/{endpoint.id}/delete": {},
    }
    for path, form in changes.items():
        refused = form_post(viewer, path, form)
        assert refused.status_code == 403, path
        assert endpoint.secret not in refused.text
    after = services.endpoints.get(endpoint.id)
    assert (after.secret, after.enabled, after.event_types) == (
        endpoint.secret,
        True,
        ["contact.*"],
    )
    assert (
        len(services.endpoints.deliveries(endpoint.id, status=None, before_id=None, limit=9)) == 1
    )


def test_unknown_ids_are_404_pages(admin: Any, services: Services) -> None:
    endpoint = _endpoint(services)
    other = _endpoint(services)
    _, delivery_id = services.endpoints.send_test(other.id, "contact.created")
    for path in (
        "/outbound/999",
        "/outbound/999/edit",
        "/outbound/999/deliveries",
        f"/outbound/{endpoint.id}/deliveries/999",
        f"/outbound/{endpoint.id}/deliveries/{delivery_id}",  # another endpoint's
        f"/outbound/{2**70}",
    ):
        page = admin.get(path)
        assert page.status_code == 404, path
        assert page.headers["content-type"].startswith("text/html"), path
    retry = form_post(admin, f"/outbound/{endpoint.id}/deliveries/{delivery_id}/retry", {})
    assert retry.status_code == 404
    assert form_post(admin, "/outbound/999/secret", {}).status_code == 404


def test_delete_removes_the_endpoint(admin: Any, services: Services) -> None:
    endpoint = _endpoint(services)
    gone = form_post(admin, f"/outbound/{endpoint.id}/delete", {})
    assert gone.status_code == 200
    assert services.endpoints.page(after_id=None, limit=10) == []
    assert "No endpoint yet" in gone.text


def test_a_nul_character_is_refused_on_both_backends(admin: Any, services: Services) -> None:
    """PostgreSQL cannot store one (the API's schemas refuse it too): a 422, never a 500."""
    endpoint = _endpoint(services)
    form = {"url": URL, "events": ["*"], "transform_kind": "none"}
    for path, extra in (
        ("/outbound", {"description": "d\x00"}),
        (f"/outbound/{endpoint.id}/edit", {"filter": "'\x00'"}),
        ("/outbound", {"transform_kind": "template", "transform_template": '{"a": "\x00"}'}),
    ):
        refused = form_post(admin, path, {**form, **extra})
        assert refused.status_code == 422, path
        assert "NUL character" in text_of(refused)
    assert [e.id for e in services.endpoints.page(after_id=None, limit=5)] == [endpoint.id]
