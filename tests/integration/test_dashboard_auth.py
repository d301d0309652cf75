"""Dashboard sign-in, sessions, CSRF and roles, through the app with a real database (both
backends): what a browser would see (redirects, statuses, cookies, pages)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from starlette.requests import Request

from hookhub.api.app import create_app
from hookhub.services import Services, build_services
from hookhub.store.migrate import migrate
from hookhub.users import DashboardUsers
from hookhub.web.auth import client_address, is_https
from tests.conftest import make_settings
from tests.support.dashboard import PASSWORD, DashboardClient, csrf_in, ensure_user

MakeClient = Callable[[str], Any]


def test_a_page_without_a_session_redirects_to_sign_in(services: Services) -> None:
    with TestClient(create_app(services), follow_redirects=False) as client:
        response = client.get("/?x=1")
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=%2F%3Fx%3D1"
        posted = client.post("/settings/keys", data={"name": "x"})
        assert posted.status_code == 303
        assert posted.headers["location"] == "/login?next=%2F"
        htmx = client.get("/overview/counts", headers={"HX-Request": "true"})
        assert htmx.status_code == 401
        assert htmx.headers["HX-Redirect"].startswith("/login?next=")


def test_sign_in_sets_a_safe_cookie_and_lands_on_next(services: Services) -> None:
    email = ensure_user(services, "admin")
    with DashboardClient(create_app(services), follow_redirects=False) as client:
        token = csrf_in(client.get("/login?next=/settings").text)
        response = client.post(
            "/login",
            data={"email": email, "password": PASSWORD, "csrf_token": token, "next": "/settings"},
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/settings"
        cookie = next(
            c for c in response.headers.get_list("set-cookie") if c.startswith("hookhub_session=")
        )
        assert "HttpOnly" in cookie
        assert "samesite=lax" in cookie.lower()
        assert "Secure" not in cookie  # plain HTTP here
        page = client.get("/")
        assert page.status_code == 200
        assert "<h1>Overview</h1>" in page.text
        assert email in page.text


def test_sign_in_over_https_marks_the_cookie_secure(services: Services) -> None:
    email = ensure_user(services, "admin")
    app = create_app(services)
    with DashboardClient(app, base_url="https://testserver", follow_redirects=False) as client:
        response = client.sign_in(email)
        assert response.status_code == 303
        assert any(
            c.startswith("hookhub_session=") and "Secure" in c
            for c in response.headers.get_list("set-cookie")
        )


def test_next_never_leaves_the_site(services: Services) -> None:
    email = ensure_user(services, "admin")
    app = create_app(services)
    for evil in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        with DashboardClient(app, follow_redirects=False) as client:
            token = csrf_in(client.get("/login").text)
            response = client.post(
                "/login",
                data={"email": email, "password": PASSWORD, "csrf_token": token, "next": evil},
            )
            assert response.status_code == 303
            assert response.headers["location"] == "/"


def test_wrong_password_and_unknown_email_get_the_same_answer(services: Services) -> None:
    email = ensure_user(services, "admin")
    with DashboardClient(create_app(services), follow_redirects=False) as client:
        wrong = client.sign_in(email, "not the password")
        unknown = client.sign_in("nobody@example.com", "not the password")
        assert wrong.status_code == unknown.status_code == 401
        assert "Wrong email or password." in wrong.text
        assert "Wrong email or password." in unknown.text
        assert "hookhub_session" not in wrong.headers.get("set-cookie", "")


def test_sign_in_without_its_csrf_token_is_refused(services: Services) -> None:
    email = ensure_user(services, "admin")
    with DashboardClient(create_app(services), follow_redirects=False) as client:
        client.get("/login")
        response = client.post("/login", data={"email": email, "password": PASSWORD})
        assert response.status_code == 403
        assert "text/html" in response.headers["content-type"]


def test_repeated_failures_are_rate_limited(services: Services) -> None:
    email = ensure_user(services, "admin")
    with DashboardClient(create_app(services), follow_redirects=False) as client:
        statuses = [client.sign_in(email, "wrong password!").status_code for _ in range(6)]
        assert statuses[:5] == [401] * 5
        assert statuses[5] == 429
        # Even the right password waits until the window passes.
        limited = client.sign_in(email)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) > 0


def test_changes_need_the_csrf_token(dashboard_client: MakeClient) -> None:
    client = dashboard_client("admin")
    refused = client.post("/logout", follow_redirects=False)
    assert refused.status_code == 403
    assert "CSRF" in refused.text
    wrong = client.post("/logout", headers={"X-CSRF-Token": "nope"}, follow_redirects=False)
    assert wrong.status_code == 403
    assert client.get("/").status_code == 200  # still signed in
    by_header = client.post(
        "/logout", headers={"X-CSRF-Token": client.csrf_token}, follow_redirects=False
    )
    assert by_header.status_code == 303


def test_logout_ends_the_session_on_the_server(
    dashboard_client: MakeClient, services: Services
) -> None:
    client = dashboard_client("viewer")
    cookie = client.cookies.get("hookhub_session")
    assert cookie
    response = client.submit("/logout")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    # The old cookie, replayed by someone who copied it, no longer works.
    with TestClient(create_app(services), follow_redirects=False) as replay:
        replay.cookies.set("hookhub_session", cookie)
        assert replay.get("/").status_code == 303


def test_disabling_a_user_ends_their_sessions(
    dashboard_client: MakeClient, services: Services
) -> None:
    client = dashboard_client("viewer")
    users = DashboardUsers(services.db)
    viewer = users.find_by_email(client.email)
    assert viewer is not None
    users.set_disabled(viewer.id, True)
    assert client.get("/", follow_redirects=False).status_code == 303
    assert client.sign_in(client.email).status_code == 401


def test_errors_on_dashboard_paths_are_pages_and_api_errors_stay_json(
    dashboard_client: MakeClient,
) -> None:
    client = dashboard_client("admin")
    page = client.get("/no/such/page")
    assert page.status_code == 404
    assert "text/html" in page.headers["content-type"]
    assert "<h1>Page not found</h1>" in page.text
    assert 'aria-label="Sections"' in page.text  # the nav, for a signed-in user
    api = client.get("/api/v1/no-such-thing")
    assert api.status_code in (401, 404)
    assert api.headers["content-type"].startswith("application/json")


def test_static_files_are_served_with_a_long_cache_life(dashboard_client: MakeClient) -> None:
    client = dashboard_client("viewer")
    for name in ("htmx.min.js", "app.css", "app.js"):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200
        assert "max-age=31536000" in response.headers["cache-control"]


def test_the_last_admin_cannot_be_disabled(services: Services) -> None:
    ensure_user(services, "admin")
    users = DashboardUsers(services.db)
    admin = users.find_by_email("admin@example.com")
    assert admin is not None
    import pytest

    from hookhub.errors import Conflict

    with pytest.raises(Conflict):
        users.set_disabled(admin.id, True)
    with pytest.raises(Conflict):
        users.set_role(admin.id, "viewer")


def test_behind_a_trusted_proxy_the_cookie_follows_x_forwarded_proto(db_url: str) -> None:
    # TestClient's peer is not an IP address, so trust is checked on requests whose scope is
    # built as uvicorn builds it.
    built = build_services(make_settings(db_url, trusted_proxies="10.0.0.0/8"))
    try:
        migrate(built.db)
        app = create_app(built).api

        def request(peer: str, headers: dict[str, str]) -> Request:
            scope = {
                "type": "http", "method": "GET", "path": "/", "scheme": "http",
                "server": ("hookhub", 80), "client": (peer, 5000), "query_string": b"",
                "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
                "app": app,
            }
            return Request(scope)

        forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7, 10.0.0.2"}
        assert is_https(request("10.0.0.1", forwarded))
        assert client_address(request("10.0.0.1", forwarded)) == "203.0.113.7"
        # Anyone else saying so is not believed.
        assert not is_https(request("198.51.100.9", forwarded))
        assert client_address(request("198.51.100.9", forwarded)) == "198.51.100.9"
    finally:
        built.close()


def test_a_session_expires_twelve_hours_after_sign_in(
    dashboard_client: MakeClient, monkeypatch: Any
) -> None:
    import hookhub.users

    client = dashboard_client("admin")
    assert client.get("/", follow_redirects=False).status_code == 200
    signed_in = hookhub.users._now()
    later = signed_in + hookhub.users.SESSION_LIFETIME - timedelta(minutes=1)
    monkeypatch.setattr(hookhub.users, "_now", lambda: later)
    assert client.get("/", follow_redirects=False).status_code == 200
    expired = signed_in + hookhub.users.SESSION_LIFETIME + timedelta(minutes=1)
    monkeypatch.setattr(hookhub.users, "_now", lambda: expired)
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")
