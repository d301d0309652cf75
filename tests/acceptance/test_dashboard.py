"""The dashboard in a real browser (Debian's chromium) against a real ``hookhub serve``:
sign-in, the overview, CSRF, sign-out, and axe-core on every page."""

from __future__ import annotations

from typing import Any

import pytest

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
