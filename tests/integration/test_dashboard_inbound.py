"""Dashboard pages of inbound webhooks, through the real app with a signed-in session.

Every page renders; create, settings, the rule editor's live preview and save, and replay do
what the API's routes do (the same service); a viewer is refused every change (403); bad input
re-renders the form with the error next to the field (422); an unknown id is a 404 page.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from hookhub.services import Services
from tests.support.dashboard_hooks import form_post, text_of
from tests.support.inbound import create_hook, fixture, raw_client

STRIPE_EVENT = fixture("stripe_customer_created")
STRIPE_SECRET = "whsec_demo_secret"


@pytest.fixture
def admin(dashboard_client: Any) -> Any:
    return dashboard_client("admin")


@pytest.fixture
def viewer(dashboard_client: Any) -> Any:
    return dashboard_client("viewer")


def _stripe_hook_with_a_request(client: Any, services: Services) -> tuple[Any, int]:
    hook = create_hook(client, "stripe", secret=STRIPE_SECRET, name="Stripe customers")
    with raw_client(client) as sender:
        answer = sender.post(hook.path, content=STRIPE_EVENT, headers=hook.sign(STRIPE_EVENT))
    assert answer.status_code == 202, answer.text
    services.inbound.process_backlog()
    return hook, int(answer.json()["request_id"])


def test_every_inbound_page_renders(admin: Any, client: Any, services: Services) -> None:
    hook, request_id = _stripe_hook_with_a_request(client, services)
    pages = {
        "/inbound": ["Stripe customers", hook.url],
        "/inbound/new": ["stripe", "Stripe-Signature", "customer created"],
        f"/inbound/{hook.id}": [hook.url, f"#{request_id}", "processed", "customer.created"],
        f"/inbound/{hook.id}?status=processed&since=2020-01-01T00:00": [f"#{request_id}"],
        f"/inbound/{hook.id}?status=failed": ["No request matches these filters"],
        f"/inbound/{hook.id}/requests": [f"#{request_id}"],
        f"/inbound/{hook.id}/requests/{request_id}": [
            "jenny.rosen@example.com",
            "stripe-signature",
            "Replay with the current rules",
        ],
        f"/inbound/{hook.id}/rules": ["customer created", f"#{request_id} · processed"],
    }
    for path, expected in pages.items():
        page = admin.get(path)
        assert page.status_code == 200, (path, page.text[:500])
        assert page.headers["content-type"].startswith("text/html")
        shown = text_of(page)
        for text in expected:
            assert text in shown, (path, text)
    # The editor's preview loads just after it (htmx), with the saved rules.
    rules = json.dumps(services.inbound.get(hook.id).rules)
    preview = form_post(
        admin,
        f"/inbound/{hook.id}/rules/preview",
        {"rules": rules, "request_id": str(request_id)},
        htmx=True,
    )
    assert "1 rule would match" in text_of(preview)
    # The secret is never shown again after creation.
    assert STRIPE_SECRET not in admin.get(f"/inbound/{hook.id}").text


def test_create_shows_the_url_and_secret_once(admin: Any, services: Services) -> None:
    created = form_post(
        admin, "/inbound", {"source": "stripe", "name": "Shop", "secret": "whsec_x1"}
    )
    assert created.status_code == 201, created.text
    [webhook] = services.inbound.page(after_id=None, limit=10)
    assert webhook.name == "Shop"
    assert webhook.source == "stripe"
    assert f"/in/{webhook.token}" in created.text
    assert "whsec_x1" in created.text
    assert len(webhook.rules) == 3, "the source's presets"

    generated = form_post(admin, "/inbound", {"source": "standard", "name": "Std"})
    assert generated.status_code == 201
    secret = services.inbound.page(after_id=webhook.id, limit=10)[0].secret
    assert secret is not None
    assert secret in generated.text


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"source": "nope"}, "source", "Choose one of the sources"),
        ({"source": "stripe", "options": "{bad"}, "options", "Not valid JSON"),
        ({"source": "stripe", "options": "[1]"}, "options", "JSON object"),
        ({"source": "stripe", "rate_limit": "fast"}, "rate_limit", "requests per second"),
        ({"source": "generic"}, "_form", "accepts every request"),
    ],
)
def test_bad_create_input_is_a_422_next_to_the_field(
    admin: Any, services: Services, form: dict[str, str], field: str, message: str
) -> None:
    answer = form_post(admin, "/inbound", form)
    assert answer.status_code == 422, answer.text[:300]
    assert "New inbound webhook" in answer.text
    if field != "_form":
        assert f'id="{field}-error"' in answer.text
    assert message in text_of(answer)
    assert services.inbound.page(after_id=None, limit=10) == []


def test_settings_change_and_bad_settings(admin: Any, client: Any, services: Services) -> None:
    hook, _ = _stripe_hook_with_a_request(client, services)
    saved = form_post(admin, f"/inbound/{hook.id}/settings", {"name": "Renamed", "rate_limit": "5"})
    assert saved.status_code == 200  # followed the 303 to the page
    assert "Saved." in saved.text
    webhook = services.inbound.get(hook.id)
    assert (webhook.name, webhook.rate_limit, webhook.enabled) == ("Renamed", 5.0, False)

    bad = form_post(admin, f"/inbound/{hook.id}/settings", {"name": "", "rate_limit": "-1"})
    assert bad.status_code == 422
    assert 'id="name-error"' in bad.text
    assert 'id="rate_limit-error"' in bad.text
    assert services.inbound.get(hook.id).name == "Renamed"

    for since in ("yesterday", "0001-01-01T00:00%2B01:00"):
        filtered = admin.get(f"/inbound/{hook.id}?since={since}")
        assert filtered.status_code == 422, since
        assert 'id="since-error"' in filtered.text
    assert admin.get(f"/inbound/{hook.id}?status=bogus").status_code == 400


def test_rule_editor_previews_a_draft_then_saves_and_replays(
    admin: Any, client: Any, services: Services
) -> None:
    hook, request_id = _stripe_hook_with_a_request(client, services)
    broken = [{"name": "broken", "contact": {"email": "data.object.nowhere"}}]
    before = services.inbound.get(hook.id).rules

    preview = form_post(
        admin,
        f"/inbound/{hook.id}/rules/preview",
        {"rules": json.dumps(broken), "request_id": str(request_id)},
        htmx=True,
    )
    assert preview.status_code == 200
    assert "The rules would fail" in preview.text
    assert "data.object.nowhere" in preview.text
    assert services.inbound.get(hook.id).rules == before, "a preview saves nothing"

    not_json = form_post(
        admin, f"/inbound/{hook.id}/rules/preview", {"rules": "[{", "request_id": str(request_id)}
    )
    assert "Not valid JSON" in not_json.text

    saved = form_post(
        admin,
        f"/inbound/{hook.id}/rules",
        {"rules": json.dumps(broken), "request_id": str(request_id)},
    )
    assert saved.status_code == 200
    assert "Rules saved" in saved.text
    assert services.inbound.get(hook.id).rules == broken

    replayed = form_post(admin, f"/inbound/{hook.id}/requests/{request_id}/replay", {})
    assert replayed.status_code == 200
    assert "Replayed" in replayed.text
    assert services.inbound.request(hook.id, request_id)["status"] == "failed"

    fixed = [{"name": "fixed", "contact": {"email": "data.object.email"}}]
    form_post(admin, f"/inbound/{hook.id}/rules", {"rules": json.dumps(fixed)})
    form_post(admin, f"/inbound/{hook.id}/requests/{request_id}/replay", {})
    assert services.inbound.request(hook.id, request_id)["status"] == "processed"

    invalid = form_post(admin, f"/inbound/{hook.id}/rules", {"rules": '[{"when": "a..b"}]'})
    assert invalid.status_code == 422
    assert 'id="rules-error"' in invalid.text
    assert "rules[0].when" in text_of(invalid)
    assert services.inbound.get(hook.id).rules == fixed


def test_viewer_sees_but_cannot_change(
    viewer: Any, admin: Any, client: Any, services: Services
) -> None:
    hook, request_id = _stripe_hook_with_a_request(client, services)
    for path in (
        "/inbound",
        f"/inbound/{hook.id}",
        f"/inbound/{hook.id}/requests/{request_id}",
        f"/inbound/{hook.id}/rules",
    ):
        page = viewer.get(path)
        assert page.status_code == 200, path
        assert "Save settings" not in page.text
    changes = {
        "/inbound": {"source": "stripe", "name": "x"},
        f"/inbound/{hook.id}/settings": {"name": "x"},
        f"/inbound/{hook.id}/rules": {"rules": "[]"},
        f"/inbound/{hook.id}/requests/{request_id}/replay": {},
        f"/inbound/{hook.id}/delete": {},
    }
    for path, form in changes.items():
        refused = form_post(viewer, path, form)
        assert refused.status_code == 403, path
    webhook = services.inbound.get(hook.id)
    assert webhook.name == "Stripe customers"
    assert len(webhook.rules) == 3
    assert len(services.inbound.page(after_id=None, limit=10)) == 1
    # The preview changes nothing, so a viewer may use it.
    preview = form_post(
        viewer, f"/inbound/{hook.id}/rules/preview", {"rules": "[]", "request_id": str(request_id)}
    )
    assert preview.status_code == 200
    assert "No rule matches" in preview.text


def test_unknown_ids_are_404_pages(admin: Any, client: Any, services: Services) -> None:
    hook, request_id = _stripe_hook_with_a_request(client, services)
    for path in (
        "/inbound/999",
        "/inbound/999/rules",
        "/inbound/999/requests",
        f"/inbound/{hook.id}/requests/999",
        f"/inbound/{hook.id}/requests/{2**62}",
        f"/inbound/{2**70}",
    ):
        page = admin.get(path)
        assert page.status_code == 404, path
        assert page.headers["content-type"].startswith("text/html"), path
    assert form_post(admin, f"/inbound/999/requests/{request_id}/replay", {}).status_code == 404
    assert form_post(admin, "/inbound/999/settings", {"name": "x"}).status_code == 404


def test_delete_removes_the_webhook(admin: Any, client: Any, services: Services) -> None:
    hook, _ = _stripe_hook_with_a_request(client, services)
    gone = form_post(admin, f"/inbound/{hook.id}/delete", {})
    assert gone.status_code == 200
    assert services.inbound.page(after_id=None, limit=10) == []
    assert re.search(r"No inbound webhook yet", gone.text)


def test_hostile_bodies_are_shown_escaped_never_a_500(
    admin: Any, client: Any, services: Services
) -> None:
    hook = create_hook(client, "generic", name="Anyone")
    bodies = [
        b'{"name": "<script>alert(1)</script>"}',
        b"[" * 5000 + b"]" * 5000,  # nested past what the JSON parser recurses into
        b"\xff\xfe not utf-8 <b>",
    ]
    with raw_client(client) as sender:
        for body in bodies:
            answer = sender.post(hook.path, content=body, headers={"content-type": "text/plain"})
            assert answer.status_code in (202, 400, 415, 422), answer.text
    services.inbound.process_backlog()
    logged = services.inbound.requests(hook.id, status=None, before_id=None, limit=10)
    assert logged
    for entry in logged:
        page = admin.get(f"/inbound/{hook.id}/requests/{entry['id']}")
        assert page.status_code == 200, page.text[:300]
        assert "<script>alert(1)</script>" not in page.text
        assert "<b>" not in page.text.split("<main", 1)[1]
        preview = form_post(
            admin,
            f"/inbound/{hook.id}/rules/preview",
            {"rules": "[" * 3000 + "]" * 3000, "request_id": str(entry["id"])},
        )
        assert preview.status_code == 200
    assert "&lt;script&gt;" in admin.get(f"/inbound/{hook.id}/requests/{logged[-1]['id']}").text


def test_a_nul_character_is_refused_on_both_backends(admin: Any, services: Services) -> None:
    """PostgreSQL cannot store one (the API's schemas refuse it too): a 422, never a 500."""
    hook, _ = services.inbound.create({"source": "stripe", "secret": "whsec_x", "name": "Shop"})
    for path, form in (
        ("/inbound", {"source": "stripe", "name": "a\x00b"}),
        (f"/inbound/{hook.id}/settings", {"name": "a\x00b"}),
        (f"/inbound/{hook.id}/rules", {"rules": '[{"name": "\x00"}]'}),
    ):
        refused = form_post(admin, path, form)
        assert refused.status_code == 422, path
        assert "NUL character" in text_of(refused)
    assert [w.name for w in services.inbound.page(after_id=None, limit=5)] == ["Shop"]
