"""The dashboard's webhook pages in a real browser, against a real ``hookhub serve``.

Inbound: create a Stripe webhook from the form, send it a request signed the way Stripe signs,
see the request and the contact it made; break a rule so the next request fails, fix the rule
against that request with the live preview, save and replay it. Outbound: create an endpoint
with the event picker against a local receiver that fails until it is "fixed", send a test, see
the delivery fail, retry it, see it succeed, and verify the signature with the revealed secret.
axe-core runs on every page these pages own.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from aiohttp import web
from playwright.sync_api import expect
from standardwebhooks.webhooks import Webhook

from hookhub.inbound.providers import get_provider
from tests.acceptance.browser_support import DashboardServer, axe_check
from tests.support.inbound import fixture
from tests.support.receiver import Received, Receiver, running_receiver

pytestmark = pytest.mark.browser

STRIPE_SECRET = "whsec_demo_secret"
STRIPE_EVENT = json.loads(fixture("stripe_customer_created"))


def send_stripe(server: DashboardServer, token: str, event_id: str, email: str) -> int:
    """POST a customer.created event to the receive URL, signed like Stripe; its request id."""
    event = json.loads(json.dumps(STRIPE_EVENT))
    event["id"] = event_id
    event["data"]["object"]["email"] = email
    body = json.dumps(event).encode()
    headers = get_provider("stripe").sign(body, STRIPE_SECRET, time.time(), {})
    answer = httpx.post(
        f"{server.url}/in/{token}",
        content=body,
        headers={**headers, "content-type": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 202, answer.text
    return int(answer.json()["request_id"])


def test_inbound_webhook_from_creation_to_a_fixed_rule(
    admin_page: Any, dashboard_server: DashboardServer
) -> None:
    page = admin_page
    page.goto("/inbound")
    axe_check(page)
    page.get_by_role("link", name="Create an inbound webhook").click()
    expect(page.get_by_role("heading", name="New inbound webhook")).to_be_visible()
    axe_check(page)
    page.get_by_label("stripe", exact=True).check()
    page.get_by_label("Name", exact=True).fill("Stripe customers")
    page.get_by_label("Signing secret").fill(STRIPE_SECRET)
    page.get_by_role("button", name="Create").click()

    expect(
        page.get_by_role("heading", name="Inbound webhook “Stripe customers” created")
    ).to_be_visible()
    axe_check(page)
    url = page.locator("#inbound-url").inner_text()
    token = url.rsplit("/in/", 1)[1]
    page.get_by_role("link", name="Open the webhook and its request log").click()
    axe_check(page)

    # A signed request arrives: the log (refreshed every 5 s) shows it processed.
    first = send_stripe(dashboard_server, token, "evt_first", "jenny.rosen@example.com")
    row = page.locator("#inbound-requests tr", has_text=f"#{first}")
    expect(row).to_contain_text("processed", timeout=20_000)
    expect(row).to_contain_text("customer.created")
    row.get_by_role("link", name=f"#{first}").click()
    expect(page.get_by_role("heading", name=f"Request #{first}")).to_be_visible()
    expect(page.locator("main")).to_contain_text("jenny.rosen@example.com")
    expect(page.get_by_role("region", name="Actions as JSON")).to_contain_text('"created"')
    axe_check(page)
    # The contact it made, on the contacts page.
    request_url = page.url
    page.goto("/contacts?q=jenny.rosen%40example.com")
    page.get_by_role("link", name="jenny.rosen@example.com").click()
    expect(page.locator("main")).to_contain_text("Jenny")
    page.goto(request_url)

    # Break the rule: the contact's email from a path the payload does not have.
    page.get_by_role("link", name="Edit the rules against this request").click()
    axe_check(page)
    rules = json.loads(page.get_by_label("Rules (JSON)").input_value())
    rules[0]["contact"]["email"] = "data.object.mail"
    page.get_by_label("Rules (JSON)").fill(json.dumps(rules, indent=2))
    preview = page.locator("#rules-preview")
    expect(preview).to_contain_text("The rules would fail", timeout=10_000)
    expect(preview).to_contain_text("data.object.mail")
    page.get_by_role("button", name="Save the rules").click()
    expect(page.get_by_text("Rules saved")).to_be_visible()

    failing = send_stripe(dashboard_server, token, "evt_second", "ada@example.com")
    page.goto(f"/inbound/{_webhook_id(page.url)}")
    row = page.locator("#inbound-requests tr", has_text=f"#{failing}")
    expect(row).to_contain_text("failed", timeout=20_000)
    row.get_by_role("link", name=f"#{failing}").click()
    expect(page.locator("main")).to_contain_text("resolved to null")
    axe_check(page)

    # Fix it against the failed request, watching the live preview, then save and replay.
    page.get_by_role("link", name="Edit the rules against this request").click()
    expect(page.get_by_label("Preview against")).to_have_value(str(failing))
    expect(preview).to_contain_text("The rules would fail")
    rules[0]["contact"]["email"] = "data.object.email"
    page.get_by_label("Rules (JSON)").fill(json.dumps(rules, indent=2))
    expect(preview).to_contain_text("would match; nothing fails", timeout=10_000)
    expect(preview).to_contain_text("ada@example.com")
    axe_check(page)
    page.get_by_role("button", name="Save the rules").click()
    page.get_by_role("button", name=f"Replay request #{failing} with the saved rules").click()
    expect(page.get_by_text("Replayed with the current rules")).to_be_visible()
    expect(page.locator("main")).to_contain_text("processed")
    expect(page.get_by_role("region", name="Actions as JSON")).to_contain_text("ada@example.com")


def _webhook_id(url: str) -> str:
    return url.split("/inbound/", 1)[1].split("/", 1)[0]


class ThreadedReceiver:
    """The aiohttp test receiver on a thread of its own (Playwright's sync API owns this one):
    answers 500 until ``fixed`` is set, then 200."""

    def __init__(self) -> None:
        self.fixed = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._context: Any = None
        self.receiver: Receiver | None = None

    async def respond(self, _request: Received) -> web.StreamResponse:
        if self.fixed.is_set():
            return web.Response(status=200, text="thanks")
        return web.Response(status=500, text="receiver is down")

    def __enter__(self) -> ThreadedReceiver:
        self.thread.start()
        self._context = running_receiver(self.respond)
        self.receiver = asyncio.run_coroutine_threadsafe(
            self._context.__aenter__(), self.loop
        ).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(
            self._context.__aexit__(None, None, None), self.loop
        ).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def receiver() -> Iterator[ThreadedReceiver]:
    with ThreadedReceiver() as running:
        yield running


def test_outbound_delivery_fails_then_succeeds_on_retry(
    admin_page: Any, receiver: ThreadedReceiver
) -> None:
    page = admin_page
    assert receiver.receiver is not None
    page.goto("/outbound")
    axe_check(page)
    page.get_by_role("link", name="Add an endpoint").click()
    axe_check(page)
    page.get_by_label("URL", exact=True).fill(receiver.receiver.url)
    page.get_by_label("contact.created", exact=True).check()
    page.get_by_label("Example of").select_option("contact.created")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#endpoint-preview")).to_contain_text("it would be sent as below")
    expect(page.locator("#endpoint-preview")).to_contain_text("ada@example.com")
    axe_check(page)
    page.get_by_role("button", name="Create the endpoint").click()
    expect(page.get_by_text("Endpoint created")).to_be_visible()
    axe_check(page)

    page.get_by_role("button", name="Reveal the secret").click()
    secret = page.get_by_label("Secret", exact=True).input_value()
    assert secret.startswith("whsec_")

    page.get_by_label("Event type's example").select_option("contact.created")
    page.get_by_role("button", name="Send a test").click()
    expect(page.get_by_text("Test message queued")).to_be_visible()
    status = page.locator("#delivery-status")
    expect(status).to_contain_text("failed", timeout=20_000)  # refreshed every 2 s
    expect(page.locator("#delivery-live")).to_contain_text("500")
    expect(page.locator("#delivery-live")).to_contain_text("receiver is down")
    axe_check(page)

    receiver.fixed.set()
    page.get_by_role("button", name="Retry now").click()
    expect(page.get_by_text("Retry queued")).to_be_visible()
    expect(status).to_contain_text("succeeded", timeout=20_000)
    expect(page.locator("#delivery-live")).to_contain_text("200")

    delivered = receiver.receiver.requests[-1]
    payload = Webhook(secret).verify(delivered.body, delivered.headers)
    assert payload["type"] == "contact.created"
    page.get_by_role("link", name=receiver.receiver.url).click()
    expect(page.locator("#outbound-deliveries")).to_contain_text("succeeded")
