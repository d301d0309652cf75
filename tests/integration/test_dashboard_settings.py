"""Settings pages on each backend: API keys made, shown once and revoked through the same
service as ``hookhub keys``; users added, re-roled and disabled; viewers refused every change
by the server."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from hookhub.api.app import create_app
from hookhub.services import Services
from hookhub.users import DashboardUsers, Role
from tests.support.dashboard import PASSWORD

MakeClient = Callable[[str], Any]
_KEY = re.compile(r'id="new-key" type="text" readonly value="([^"]+)"')


def test_admin_creates_a_key_seen_once_that_works_then_revokes_it(
    dashboard_client: MakeClient, services: Services
) -> None:
    admin = dashboard_client("admin")
    made = admin.submit("/settings/keys", {"name": "billing sync", "scope": "read"})
    assert made.status_code == 201
    assert made.headers["cache-control"] == "no-store"
    found = _KEY.search(made.text)
    assert found is not None
    key = found.group(1)
    assert key not in admin.get("/settings").text  # shown once, never again
    with TestClient(create_app(services)) as api:
        auth = {"Authorization": f"Bearer {key}"}
        assert api.get("/api/v1/contacts", headers=auth).status_code == 200
        assert api.post("/api/v1/contacts", headers=auth, json={"email": "x@example.com"}
                        ).status_code == 403  # read scope
        info = next(k for k in services.keys.list() if k.name == "billing sync")
        revoked = admin.submit(f"/settings/keys/{info.id}/revoke")
        assert revoked.status_code == 303
        assert "revoked" in admin.get(revoked.headers["location"]).text
        assert api.get("/api/v1/contacts", headers=auth).status_code == 401


def test_a_key_needs_a_name_and_a_scope(dashboard_client: MakeClient) -> None:
    admin = dashboard_client("admin")
    page = admin.submit("/settings/keys", {"name": " ", "scope": "root"})
    assert page.status_code == 422
    assert "Give the key a name" in page.text
    assert "Choose read, write or admin." in page.text
    assert admin.submit("/settings/keys/999999/revoke").status_code == 404


def test_viewers_are_refused_every_change_by_the_server(
    dashboard_client: MakeClient, services: Services
) -> None:
    viewer = dashboard_client("viewer")
    page = viewer.get("/settings")
    assert page.status_code == 200
    assert "Create key" not in page.text  # nothing to press ...
    key_id = services.keys.list()[0].id
    user_id = DashboardUsers(services.db).list()[0].id
    for path, form in [  # ... and posting by hand is refused all the same
        ("/settings/keys", {"name": "sneaky", "scope": "admin"}),
        (f"/settings/keys/{key_id}/revoke", {}),
        ("/settings/users", {"email": "new@example.com", "role": "admin",
                             "password": PASSWORD, "password_again": PASSWORD}),
        (f"/settings/users/{user_id}/role", {"role": "viewer"}),
        (f"/settings/users/{user_id}/disable", {}),
    ]:
        refused = viewer.submit(path, form)
        assert refused.status_code == 403, path
        assert "Viewers cannot change anything." in refused.text
    assert all(k.name != "sneaky" for k in services.keys.list())
    assert DashboardUsers(services.db).find_by_email("new@example.com") is None
    assert all(k.revoked_at is None for k in services.keys.list())


def test_admin_adds_a_user_who_can_sign_in_then_changes_and_disables_them(
    dashboard_client: MakeClient, services: Services
) -> None:
    admin = dashboard_client("admin")
    differ = admin.submit("/settings/users", {"email": "eve@example.com", "role": "viewer",
                                              "password": PASSWORD, "password_again": "x"})
    assert differ.status_code == 422
    assert "The two passwords differ." in differ.text
    short = admin.submit("/settings/users", {"email": "eve@example.com", "role": "viewer",
                                             "password": "short", "password_again": "short"})
    assert short.status_code == 422
    assert "at least 10 characters" in short.text
    bad_email = admin.submit("/settings/users", {"email": "not-an-email", "role": "viewer",
                                                 "password": PASSWORD, "password_again": PASSWORD})
    assert bad_email.status_code == 422
    made = admin.submit("/settings/users", {"email": "Eve@Example.com", "role": "viewer",
                                            "password": PASSWORD, "password_again": PASSWORD})
    assert made.status_code == 303
    again = admin.submit("/settings/users", {"email": "eve@example.com", "role": "viewer",
                                             "password": PASSWORD, "password_again": PASSWORD})
    assert again.status_code == 409
    users = DashboardUsers(services.db)
    eve = users.find_by_email("eve@example.com")
    assert eve is not None
    assert eve.role is Role.VIEWER
    assert admin.submit(f"/settings/users/{eve.id}/role", {"role": "admin"}).status_code == 303
    assert users.get(eve.id).role is Role.ADMIN
    assert admin.submit(f"/settings/users/{eve.id}/disable").status_code == 303
    assert users.authenticate("eve@example.com", PASSWORD) is None
    assert admin.submit(f"/settings/users/{eve.id}/enable").status_code == 303
    assert users.authenticate("eve@example.com", PASSWORD) is not None


def test_the_last_admin_stays(dashboard_client: MakeClient, services: Services) -> None:
    admin = dashboard_client("admin")
    me = DashboardUsers(services.db).find_by_email(admin.email)
    assert me is not None
    refused = admin.submit(f"/settings/users/{me.id}/disable")
    assert refused.status_code == 409
    assert "last admin" in refused.text
    assert admin.submit(f"/settings/users/{me.id}/role", {"role": "viewer"}).status_code == 409
    assert admin.submit(f"/settings/users/{me.id}/role", {"role": "owner"}).status_code == 422
    assert admin.submit("/settings/users/999999/disable").status_code == 404
    # Ids beyond what the database can hold are simply not there (never a 500).
    huge = "99999999999999999999999"
    assert admin.submit(f"/settings/users/{huge}/disable").status_code == 404
    assert admin.submit(f"/settings/keys/{huge}/revoke").status_code == 404
    assert admin.submit("/settings/keys/abc/revoke").status_code == 422
