"""Dashboard test helpers: users, and TestClients signed in through the real sign-in form.

``dashboard_client(role)`` (a fixture in tests/integration/conftest.py) gives a
:class:`DashboardClient`: a TestClient with the session cookie, its ``csrf_token`` and
``submit(path, data)`` that posts a form with the token (``post`` sends exactly what it is given,
to test refusals).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient
from httpx2 import Response

from hookhub.services import Services
from hookhub.users import DashboardUsers, Role

PASSWORD = "correct horse battery staple"
EMAILS = {"admin": "admin@example.com", "viewer": "viewer@example.com"}

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_in(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "the page has no csrf_token field"
    return found.group(1)


def ensure_user(services: Services, role: str, email: str | None = None) -> str:
    users = DashboardUsers(services.db)
    address = email or EMAILS[role]
    if users.find_by_email(address) is None:
        users.create(address, PASSWORD, Role(role))
    return address


class DashboardClient(TestClient):
    csrf_token: str = ""
    email: str = ""

    def sign_in(self, email: str, password: str = PASSWORD) -> Response:
        token = csrf_in(self.get("/login").text)
        return self.post(
            "/login",
            data={"email": email, "password": password, "csrf_token": token, "next": "/"},
            follow_redirects=False,
        )

    def submit(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Response:
        """POST a form with the session's CSRF token (no redirects followed)."""
        form = {**(data or {}), "csrf_token": self.csrf_token}
        kwargs.setdefault("follow_redirects", False)
        return self.post(path, data=form, **kwargs)


def signed_in_client(app: Any, services: Services, role: str) -> DashboardClient:
    """A client (not yet entered) signed in as the ``role`` user (created if needed)."""
    client = DashboardClient(app, raise_server_exceptions=True)
    client.email = ensure_user(services, role)
    response = client.sign_in(client.email)
    assert response.status_code == 303, response.text
    client.csrf_token = csrf_in(client.get("/settings").text)
    return client
