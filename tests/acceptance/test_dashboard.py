"""The dashboard in a real browser (Debian's chromium) against a real ``hookhub serve``:
sign-in, the overview, CSRF, sign-out, and axe-core on every page."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from hookhub.web.render import SECTIONS
from tests.acceptance.browser_support import DashboardServer, axe_check, sign_in

pytestmark = pytest.mark.browser


def test_sign_in_lands_on_the_page_asked_for(
    anonymous_page: Any, dashboard_server: DashboardServer
) -> None:
    page = anonymous_page
    page.goto("/")
    assert page.url == dashboard_server.url + "/login?next=%2F"
    assert page.locator("h1").inner_text() == "Sign in"
    axe_check(page)
    page.get_by_label("Email").fill(dashboard_server.admin_email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "Wrong email or password."
    axe_check(page)
    sign_in(page, dashboard_server, dashboard_server.admin_email)
    assert page.locator("h1").inner_text() == "Overview"
    assert dashboard_server.admin_email in page.locator("header").inner_text()


def test_overview_shows_counts_and_passes_axe(admin_page: Any) -> None:
    admin_page.goto("/")
    assert admin_page.get_by_role("link", name="Overview").get_attribute("aria-current") == "page"
    assert admin_page.locator("#overview-counts dt").count() == 5
    # The activity is counted after the page (htmx loads it): three charts, each with a table.
    admin_page.locator("#overview-activity svg").first.wait_for()
    assert admin_page.locator("#overview-activity svg[role=img]").count() == 3
    axe_check(admin_page)
    admin_page.get_by_role("link", name="Last hour").click()
    admin_page.locator("#overview-activity svg").first.wait_for()
    assert "window=hour" in admin_page.url
    axe_check(admin_page)


def test_a_change_without_the_csrf_token_is_refused(admin_page: Any) -> None:
    admin_page.goto("/")
    refused = admin_page.request.post("/logout", form={"x": "1"}, max_redirects=0)
    assert refused.status == 403
    assert "CSRF" in refused.text()
    admin_page.reload()
    assert admin_page.locator("h1").inner_text() == "Overview"  # still signed in


def test_sign_out_ends_the_session(
    anonymous_page: Any, dashboard_server: DashboardServer
) -> None:
    # Its own sign-in: signing out ends the session the shared viewer_page cookies belong to.
    viewer_page = anonymous_page
    sign_in(viewer_page, dashboard_server, dashboard_server.viewer_email)
    cookies = viewer_page.context.cookies()
    session = next(c for c in cookies if c["name"] == "hookhub_session")
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Lax"
    viewer_page.get_by_role("button", name="Sign out").click()
    viewer_page.wait_for_url(dashboard_server.url + "/login")
    viewer_page.goto("/")
    assert "/login" in viewer_page.url
    # Neither the password nor the session's token ever reaches the server's output.
    logged = dashboard_server.log()
    assert dashboard_server.password not in logged
    assert session["value"] not in logged


def test_repeated_failed_sign_ins_are_rate_limited(anonymous_page: Any) -> None:
    page = anonymous_page
    page.goto("/login")
    for _ in range(5):
        page.get_by_label("Email").fill("nobody@example.com")
        page.get_by_label("Password").fill("guessing again")
        page.get_by_role("button", name="Sign in").click()
        assert page.get_by_role("alert").inner_text() == "Wrong email or password."
    page.get_by_label("Email").fill("nobody@example.com")
    page.get_by_label("Password").fill("guessing again")
    with page.expect_response("**/login") as answer:
        page.get_by_role("button", name="Sign in").click()
    assert answer.value.status == 429
    assert "Too many sign-in attempts" in page.get_by_role("alert").inner_text()


def test_a_viewer_is_refused_a_change_even_posted_by_hand(viewer_page: Any) -> None:
    viewer_page.goto("/settings")
    assert viewer_page.locator("h1").inner_text() == "Settings"
    assert viewer_page.get_by_role("button", name="Create key").count() == 0
    token = viewer_page.locator("form[action='/logout'] input[name=csrf_token]").input_value()
    refused = viewer_page.request.post(
        "/settings/keys", form={"name": "by hand", "scope": "admin", "csrf_token": token}
    )
    assert refused.status == 403
    assert "Viewers cannot change anything." in refused.text()
    viewer_page.reload()
    assert "by hand" not in viewer_page.locator("main").inner_text()


def test_admin_makes_a_key_sees_it_once_and_revokes_it(admin_page: Any) -> None:
    page = admin_page
    page.goto("/settings")
    page.get_by_label("Name").fill("browser test key")
    page.get_by_label("Scope").select_option("read")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_label("New API key").input_value()
    assert key.startswith("hh_")
    axe_check(page)
    page.goto("/settings")
    assert key not in page.content()
    row = page.get_by_role("row").filter(has_text="browser test key")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke").click()
    assert "The key was revoked" in page.get_by_role("status").inner_text()
    assert "revoked" in page.get_by_role("row").filter(has_text="browser test key").inner_text()


NAV = [(section, path) for section, path, _label in SECTIONS]


@pytest.mark.parametrize(("section", "path"), NAV, ids=[s for s, _ in NAV])
def test_every_page_in_the_nav_passes_axe(admin_page: Any, section: str, path: str) -> None:
    response = admin_page.goto(path)
    if response is not None and response.status == 404:
        pytest.skip(f"{path} is not built yet (404)")
    assert response is not None
    assert response.status == 200, f"{path}: {response.status}"
    admin_page.wait_for_load_state("networkidle")
    assert admin_page.locator("h1").count() == 1, f"{path} needs exactly one <h1>"
    axe_check(admin_page)


SCREENSHOTS = [
    ("overview", "/"),
    ("contacts", "/contacts"),
    ("contact", "/contacts/{contact}"),
    ("inbound", "/inbound"),
    ("outbound", "/outbound"),
    ("templates", "/templates"),
    ("settings", "/settings"),
]


def test_screenshots_of_the_main_pages(
    admin_page: Any, dashboard_server: DashboardServer, tmp_path: Path
) -> None:
    """Screenshots of the main pages with a little data in them: into tmp_path, or into
    $HOOKHUB_SCREENSHOTS_DIR (``HOOKHUB_SCREENSHOTS_DIR=docs/screenshots`` refreshes the
    README's)."""
    target = Path(os.environ.get("HOOKHUB_SCREENSHOTS_DIR") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    with dashboard_server.api() as api:
        customers = api.post("/lists", json={"name": "Customers"}).json()["id"]
        contact = None
        for name in ("ada", "grace", "edsger"):
            made = api.post("/contacts", json={
                "email": f"{name}@example.com", "attributes": {"FIRSTNAME": name.title()},
                "list_ids": [customers]})
            assert made.status_code in (200, 201), made.text
            contact = contact or made.json()["id"]
        assert api.post("/inbound-webhooks",
                        json={"name": "Stripe", "source": "stripe"}).status_code == 201
        assert api.post("/webhooks", json={"url": "https://crm.example.com/hooks",
                                           "events": ["contact.created"]}).status_code == 201
    admin_page.set_viewport_size({"width": 1280, "height": 800})
    for name, path in SCREENSHOTS:
        response = admin_page.goto(path.format(contact=contact))
        assert response is not None
        if response.status == 404:
            continue
        admin_page.wait_for_load_state("networkidle")
        admin_page.screenshot(path=str(target / f"{name}.png"), full_page=True)
        assert (target / f"{name}.png").stat().st_size > 1000
