"""The people pages in a real browser (Debian's chromium) against a real ``hookhub serve`` whose
email worker sends to a real SMTP server on loopback: write a template with the live preview
and send a test email that arrives; a contact's page shows its timeline; a viewer is refused a
change; axe-core on every page of contacts, lists, templates, campaigns, emails, automations."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest

from tests.acceptance.browser_support import (
    PASSWORD,
    DashboardServer,
    axe_check,
    chromium_or_skip,
    hookhub_cli,
)
from tests.conftest import API_KEY
from tests.support.processes import free_port, hookhub_env, start, stop, wait_http
from tests.support.smtp import SmtpServer, running_smtp_server

pytestmark = pytest.mark.browser
HEADERS = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    with running_smtp_server() as server:
        yield server


@pytest.fixture(scope="module")
def dashboard_server(
    tmp_path_factory: pytest.TempPathFactory, smtp: SmtpServer
) -> Iterator[DashboardServer]:
    """The harness's server (browser_support.dashboard_server), with email going to ``smtp``
    and an API key to set data up with."""
    chromium_or_skip()
    tmp = tmp_path_factory.mktemp("dashboard-people")
    db_url = f"sqlite:///{tmp / 'hookhub.db'}"
    env = hookhub_env(db_url, HOOKHUB_SMTP_URL=smtp.url(), HOOKHUB_API_KEY=API_KEY)
    server = DashboardServer(url="", db_url=db_url, env=env, log_path=tmp / "serve.log")
    for email, role in ((server.admin_email, "admin"), (server.viewer_email, "viewer")):
        hookhub_cli(
            env, "users", "create", email, "--role", role, "--password-stdin", stdin=PASSWORD
        )
    port = free_port()
    with server.log_path.open("wb") as log:
        process = start(["serve", "--host", "127.0.0.1", "--port", str(port)], env, log)
        server.url = f"http://127.0.0.1:{port}"
        try:
            wait_http(server.url + "/healthz", timeout=60, process=process)
            yield server
        finally:
            stop(process)


def api(server: DashboardServer, method: str, path: str, **body: Any) -> dict[str, Any]:
    answer = httpx.request(
        method, f"{server.url}/api/v1{path}", json=body or None, headers=HEADERS, timeout=10
    )
    assert answer.status_code < 300, answer.text
    data: dict[str, Any] = answer.json() if answer.content else {}
    return data


def test_write_a_template_with_the_live_preview_and_send_a_test_email(
    admin_page: Any, smtp: SmtpServer
) -> None:
    from playwright.sync_api import expect

    page = admin_page
    page.goto("/templates")
    axe_check(page)
    page.get_by_role("link", name="New template").click()
    page.get_by_label("Name", exact=True).fill("Welcome")
    page.get_by_label(re.compile("^Subject")).fill("Welcome aboard, {{ contact.FIRSTNAME }}")
    page.get_by_label("HTML", exact=True).fill(
        "<h1>Hi {{ contact.FIRSTNAME }}</h1><p>Plan: {{ contact.PLAN }}</p>"
    )
    # the preview follows the draft as it is typed, rendered for the sample contact
    expect(page.locator(".preview-subject")).to_have_text("Welcome aboard, Ann")
    frame = page.frame_locator("iframe.email-preview")
    expect(frame.locator("h1")).to_have_text("Hi Ann")
    expect(frame.locator("p")).to_have_text("Plan: pro")
    # a mistake shows where, in place, without saving anything
    page.get_by_label("HTML", exact=True).fill("<p>{{ contact. }}</p>")
    expect(page.locator("#preview [role=alert]")).to_contain_text("does not compile")
    page.get_by_label("HTML", exact=True).fill("<h1>Hi {{ contact.FIRSTNAME }}</h1>")
    expect(frame.locator("h1")).to_have_text("Hi Ann")
    axe_check(page, exclude=["iframe.email-preview"])
    page.get_by_role("button", name="Create template").click()
    page.wait_for_url(re.compile(r".*/templates/\d+$"))
    assert page.locator("h1").first.inner_text() == "Welcome"

    page.get_by_label("To", exact=True).fill("reader@example.com")
    page.get_by_role("button", name="Send test").click()
    expect(page.get_by_role("status")).to_contain_text("reader@example.com")
    [mail] = smtp.wait_for(1)
    assert mail.recipients == ["reader@example.com"]
    assert b"Subject: Welcome aboard," in mail.data

    page.get_by_role("status").get_by_role("link").click()
    page.wait_for_url(re.compile(r".*/emails/\d+$"))
    expect(page.locator("pre.raw")).to_contain_text("Subject: Welcome aboard,")
    axe_check(page, exclude=["iframe.email-preview"])


def test_a_contacts_page_shows_its_timeline(
    admin_page: Any, dashboard_server: DashboardServer
) -> None:
    from playwright.sync_api import expect

    contact = api(
        dashboard_server, "POST", "/contacts", email="tina@example.com", attributes={"PLAN": "pro"}
    )
    api(
        dashboard_server,
        "POST",
        "/events",
        event_name="trial_started",
        identifiers={"email": "tina@example.com"},
        event_properties={"days": 14},
    )
    page = admin_page
    page.goto("/contacts")
    page.get_by_label(re.compile("Search by email prefix")).fill("tina@")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="tina@example.com").click()
    page.wait_for_url(f"**/contacts/{contact['id']}")
    timeline = page.locator("ol.timeline")
    expect(timeline).to_contain_text("trial_started")
    expect(timeline).to_contain_text('{"days": 14}')
    axe_check(page)

    # an attribute search finds her too
    page.goto("/contacts?q=plan%3Dpro")
    expect(page.get_by_role("link", name="tina@example.com")).to_be_visible()
    axe_check(page)


def test_a_viewer_sees_a_contact_but_cannot_change_it(
    viewer_page: Any, dashboard_server: DashboardServer
) -> None:
    contact = api(dashboard_server, "POST", "/contacts", email="vic@example.com")
    page = viewer_page
    page.goto(f"/contacts/{contact['id']}")
    assert page.get_by_role("button", name="Save").count() == 0
    token = page.locator("body").get_attribute("hx-headers") or ""
    csrf = re.search(r'"X-CSRF-Token":\s*"([^"]+)"', token)
    assert csrf is not None
    refused = page.request.post(
        f"/contacts/{contact['id']}/delete",
        form={"confirm": "yes", "csrf_token": csrf.group(1)},
        max_redirects=0,
    )
    assert refused.status == 403
    assert "Viewers cannot change anything" in refused.text()
    assert api(dashboard_server, "GET", f"/contacts/{contact['id']}")["email"] == "vic@example.com"


def test_every_people_page_passes_axe(admin_page: Any, dashboard_server: DashboardServer) -> None:
    server = dashboard_server
    listed = api(server, "POST", "/lists", name="Axe readers")
    person = api(server, "POST", "/contacts", email="axe@example.com", list_ids=[listed["id"]])
    template = api(
        server, "POST", "/email-templates", name="Axe", subject="Hi", html="<p>Hello</p>"
    )
    campaign = api(
        server,
        "POST",
        "/campaigns",
        name="Axe",
        template_id=template["id"],
        list_ids=[listed["id"]],
    )
    flow = api(
        server,
        "POST",
        "/automations",
        name="Axe flow",
        trigger={"type": "manual"},
        steps=[
            {"id": "w", "wait": "1h"},
            {"id": "b", "if": "`true`", "then": [{"id": "t", "exit": True}]},
        ],
    )
    api(server, "POST", f"/automations/{flow['id']}/enrollments", contact=person["id"])
    sent = api(
        server, "POST", "/emails", to=[{"email": "axe@example.com"}], subject="S", html="<p>H</p>"
    )
    pages = [
        "/contacts",
        f"/contacts/{person['id']}",
        "/lists",
        f"/lists/{listed['id']}",
        "/templates",
        "/templates/new",
        f"/templates/{template['id']}",
        "/campaigns",
        "/campaigns/new",
        f"/campaigns/{campaign['id']}",
        "/emails",
        f"/emails/{sent['data'][0]['id']}",
        "/automations",
        "/automations/new",
        f"/automations/{flow['id']}",
        f"/automations/{flow['id']}?contact={person['id']}",
    ]
    for path in pages:
        response = admin_page.goto(path)
        assert response is not None
        assert response.status == 200, path
        assert admin_page.locator("h1").count() == 1, path
        axe_check(admin_page, exclude=["iframe.email-preview"])
