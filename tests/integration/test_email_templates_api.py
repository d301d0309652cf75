"""Email templates through the REST API, on each backend: save, refuse, edit, preview."""

from __future__ import annotations

from typing import Any

import pytest

from hookhub.keys import Scope

ORDER = {
    "name": "Order confirmation",
    "subject": "Order {{ params.order_id }} for {{ contact.FIRSTNAME }}",
    "html": (
        "<h1>Thanks {{ contact.FIRSTNAME }}!</h1>\n"
        "<p>Order <b>{{ params.order_id }}</b> ({{ contact.email }}).</p>\n"
        '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
    ),
    "sender": {"email": "Shop@Example.com", "name": "The Shop"},
    "reply_to": "help@example.com",
    "tags": ["orders", "transactional", "orders"],
}


def create(client: Any, **overrides: Any) -> dict[str, Any]:
    response = client.post("/api/v1/email-templates", json={**ORDER, **overrides})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def rows(services: Any) -> int:
    with services.db.read() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM email_templates").scalar_one())


def test_a_saved_template_reads_back_as_given(client: Any) -> None:
    created = create(client)
    assert created["name"] == "Order confirmation"
    assert created["subject"] == ORDER["subject"]
    assert created["html"] == ORDER["html"]
    assert created["text"] is None
    assert created["sender"] == {"email": "shop@example.com", "name": "The Shop"}
    assert created["reply_to"] == "help@example.com"
    assert created["tags"] == ["orders", "transactional"]
    assert created["version"] == 1
    assert created["created_at"] == created["updated_at"]
    assert client.get(f"/api/v1/email-templates/{created['id']}").json() == created


@pytest.mark.parametrize(
    ("overrides", "field", "line"),
    [
        ({"subject": "Hi {{ contact.FIRSTNAME"}, "subject", 1),
        (
            {"html": "<p>one</p>\n<p>two</p>\n{% for x in params.items %}\n<p>{{ x }}</p>"},
            "html",
            4,
        ),
        ({"html": "<p>\n{{ params.total | no_such_filter }}</p>"}, "html", 2),
        ({"text": "Hello\n{% endif %}"}, "text", 2),
        ({"html": "{% include 'header.html' %}"}, "html", 1),
    ],
)
def test_a_template_that_does_not_compile_is_refused_naming_field_and_line(
    client: Any, services: Any, overrides: dict[str, Any], field: str, line: int
) -> None:
    response = client.post("/api/v1/email-templates", json={**ORDER, **overrides})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "template_invalid"
    assert error["details"]["field"] == field
    assert error["details"]["line"] == line
    assert f"line {line}" in error["message"]
    assert rows(services) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**ORDER, "sender": {"email": "not an address"}}, "sender.email"),
        ({**ORDER, "sender": {"email": "jürgen@example.com"}}, "sender.email"),
        ({**ORDER, "reply_to": "nobody"}, "reply_to"),
    ],
)
def test_addresses_are_checked_at_save(
    client: Any, services: Any, body: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/email-templates", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["details"]["field"] == field
    assert rows(services) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "subject": "s"},
        {**ORDER, "name": "  "},
        {**ORDER, "html": ""},
        {**ORDER, "tags": ["x"] * 21},
        {**ORDER, "tags": "orders"},
        {**ORDER, "unknown": 1},
        {**ORDER, "subject": 5},
    ],
)
def test_malformed_bodies_are_422(client: Any, body: dict[str, Any]) -> None:
    response = client.post("/api/v1/email-templates", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


def test_patch_changes_what_is_given_and_bumps_the_version(client: Any) -> None:
    created = create(client)
    path = f"/api/v1/email-templates/{created['id']}"
    patched = client.patch(path, json={"text": "Order {{ params.order_id }}", "tags": ["x"]})
    assert patched.status_code == 200
    body = patched.json()
    assert body["text"] == "Order {{ params.order_id }}"
    assert body["tags"] == ["x"]
    assert body["html"] == ORDER["html"]
    assert body["version"] == 2
    cleared = client.patch(path, json={"text": None, "sender": None, "reply_to": None}).json()
    assert (cleared["text"], cleared["sender"], cleared["reply_to"]) == (None, None, None)
    assert cleared["version"] == 3
    assert client.patch(path, json={}).json()["version"] == 3


def test_patch_refuses_what_does_not_compile_and_changes_nothing(client: Any) -> None:
    created = create(client)
    path = f"/api/v1/email-templates/{created['id']}"
    refused = client.patch(path, json={"name": "new name", "html": "<p>{{ oops </p>"})
    assert refused.status_code == 422
    assert refused.json()["error"]["details"]["field"] == "html"
    assert client.get(path).json() == created
    null_html = client.patch(path, json={"html": None})
    assert null_html.status_code == 422
    assert null_html.json()["error"]["details"] == {"field": "html"}


def test_list_pages_and_delete(client: Any) -> None:
    ids = [create(client, name=f"t{i}")["id"] for i in range(3)]
    first = client.get("/api/v1/email-templates", params={"limit": 2}).json()
    assert [t["id"] for t in first["data"]] == ids[:2]
    second = client.get(
        "/api/v1/email-templates", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [t["id"] for t in second["data"]] == ids[2:]
    assert second["next_cursor"] is None
    assert client.delete(f"/api/v1/email-templates/{ids[1]}").status_code == 204
    assert client.get(f"/api/v1/email-templates/{ids[1]}").status_code == 404
    gone = client.delete(f"/api/v1/email-templates/{ids[1]}")
    assert gone.status_code == 404
    assert gone.json()["error"]["details"] == {"template_id": ids[1]}
    assert client.patch(f"/api/v1/email-templates/{ids[1]}", json={"name": "x"}).status_code == 404
    listed = client.get("/api/v1/email-templates").json()["data"]
    assert [t["id"] for t in listed] == [ids[0], ids[2]]


def test_preview_renders_a_real_contacts_data(client: Any) -> None:
    contact = client.post(
        "/api/v1/contacts",
        json={"email": "ann@example.com", "attributes": {"FIRSTNAME": "Ann <3"}},
    ).json()
    created = create(client)
    path = f"/api/v1/email-templates/{created['id']}/preview"
    for ref in (contact["id"], "ann@example.com", str(contact["id"])):
        response = client.post(path, json={"contact": ref, "params": {"order_id": "A-7"}})
        assert response.status_code == 200, response.text
        preview = response.json()
        assert preview["subject"] == "Order A-7 for Ann <3"
        assert "<h1>Thanks Ann &lt;3!</h1>" in preview["html"]
        assert "(ann@example.com)" in preview["html"]
        assert preview["text"].startswith("Thanks Ann <3!\n\nOrder A-7 (ann@example.com).")
        assert "Unsubscribe (http" in preview["text"]
    anonymous = client.post(path, json={}).json()
    assert anonymous["subject"] == "Order for"
    assert "<h1>Thanks !</h1>" in anonymous["html"]


def test_preview_of_an_unknown_contact_or_template_says_which(client: Any) -> None:
    created = create(client)
    path = f"/api/v1/email-templates/{created['id']}/preview"
    for ref in ("nobody@example.com", 999_999, "not-a-ref"):
        response = client.post(path, json={"contact": ref})
        assert response.status_code == 422, ref
        error = response.json()["error"]
        assert error["details"]["field"] == "contact"
        assert str(ref) in error["message"]
    missing = client.post("/api/v1/email-templates/999999/preview", json={})
    assert missing.status_code == 404
    assert missing.json()["error"]["details"] == {"template_id": 999999}


def test_a_preview_that_fails_to_render_is_a_clear_422(client: Any) -> None:
    created = create(client, html="<p>\n{{ params.total / params.count }}</p>")
    response = client.post(
        f"/api/v1/email-templates/{created['id']}/preview",
        json={"params": {"total": 10, "count": 0}},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "template_render_error"
    assert error["details"]["field"] == "html"
    assert error["details"]["line"] == 2
    assert "division by zero" in error["message"]


def test_reading_needs_read_scope_and_changing_needs_write(client: Any, services: Any) -> None:
    _, read_key = services.keys.create("reader", scope=Scope.READ)
    headers = {"Authorization": f"Bearer {read_key}"}
    created = create(client)
    assert client.get("/api/v1/email-templates", headers=headers).status_code == 200
    refused = client.post("/api/v1/email-templates", json=ORDER, headers=headers)
    assert refused.status_code == 403
    preview = client.post(
        f"/api/v1/email-templates/{created['id']}/preview", json={}, headers=headers
    )
    assert preview.status_code == 403
