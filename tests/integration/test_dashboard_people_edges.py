"""Hostile and odd input to the people pages (both backends): every answer is a clear status
with an HTML page, never a 500 (the client raises on one)."""

from __future__ import annotations

from typing import Any

import pytest

from hookhub.services import Services
from tests.support.automations import automation

Client = Any
NUL = "a\x00b"


@pytest.fixture
def admin(dashboard_client: Any) -> Client:
    return dashboard_client("admin")


@pytest.fixture
def ids(client: Any, services: Services) -> dict[str, int]:
    with services.crm.transaction() as crm:
        contact, _ = crm.create_contact("edge@example.com")
        list_id = crm.lists.create("Edge", crm.now).id
    template = client.post(
        "/api/v1/email-templates", json={"name": "E", "subject": "S", "html": "<p>H</p>"}
    ).json()["id"]
    campaign = client.post(
        "/api/v1/campaigns", json={"name": "E", "template_id": template, "list_ids": [list_id]}
    ).json()["id"]
    flow = automation(client, [{"wait": "1h"}], name="Edge")["id"]
    return {
        "contact": contact.id,
        "list": list_id,
        "template": template,
        "campaign": campaign,
        "flow": flow,
    }


GETS = [
    ("/contacts", {"q": NUL}),
    ("/contacts", {"q": "PLAN=" + NUL}),
    ("/contacts", {"q": "=x"}),
    ("/contacts", {"q": "%_\\"}),
    ("/contacts", {"list_id": "99999999999999999999"}),
    ("/contacts", {"list_id": "-1"}),
    ("/contacts", {"list_id": "424242"}),
    ("/contacts", {"cursor": "x" * 500}),
    ("/contacts", {"q": "user", "cursor": "aTox"}),  # an integer cursor where text is expected
    ("/contacts/{contact}", {"timeline": "e30"}),  # {}
    ("/contacts/{contact}", {"timeline": "eyJ0IjogMSwgInMiOiA5fQ"}),  # unknown rank
    ("/contacts/{contact}", {"timeline": "eyJ0IjoxLCJzIjowLCJyIjoieCJ9"}),  # text ref for events
    ("/contacts/{contact}", {"timeline": "eyJ0IjoxZTMwOCwicyI6MCwiciI6MX0"}),  # t huge
    ("/contacts/{contact}", {"timeline": "eyJpIjo5OTk5OTk5OTk5OTk5OTk5OTk5OTk5fQ"}),  # huge i
    ("/lists/{list}", {"cursor": "!!"}),
    ("/emails", {"to": NUL}),
    ("/emails", {"campaign_id": "0"}),
    ("/emails/{contact}", {}),
    ("/automations/{flow}", {"contact": NUL}),
    ("/automations/{flow}", {"contact": "99999999999999999999"}),
    ("/automations/{flow}", {"contact": "x" * 400}),
    ("/campaigns", {"cursor": "-"}),
    ("/templates", {"cursor": "-"}),
]


@pytest.mark.parametrize(("path", "params"), GETS)
def test_odd_queries_get_a_clear_answer(
    admin: Client, ids: dict[str, int], path: str, params: dict[str, str]
) -> None:
    response = admin.get(path.format(**ids), params=params)
    assert response.status_code < 500
    assert response.status_code in (200, 400, 404, 422), response.status_code
    assert "<html" in response.text.lower()


POSTS = [
    ("/contacts", {"email": NUL}),
    ("/contacts", {"email": "ok@example.com", "ext_id": NUL}),
    ("/contacts", {"email": "ok@example.com", "attributes": "NAME=" + NUL}),
    ("/contacts", {"email": "ok@example.com", "attributes": "X" * 70 + "=1"}),
    ("/contacts/{contact}/attributes", {"email": "bad", "attributes": ""}),
    ("/contacts/{contact}/lists", {"list_id": "99999999999999999999"}),
    ("/contacts/{contact}/lists", {"list_id": "abc"}),
    ("/contacts/{contact}/lists/424242/remove", {}),
    ("/lists", {"name": NUL}),
    ("/lists", {"name": "x" * 300}),
    ("/lists/{list}/rename", {"name": ""}),
    ("/lists/{list}/members", {"emails": "not an email"}),
    ("/lists/{list}/members", {"emails": ""}),
    ("/templates", {"name": "x", "subject": "s", "html": "{{ 1/0 }}"}),
    ("/templates/preview", {"subject": "{{ 1/0 }}", "html": "<p>x</p>"}),
    ("/templates/preview", {"subject": "s", "html": "<p>x</p>", "preview_contact": "nobody@x.org"}),
    ("/templates/preview", {"subject": "s", "html": "{% for i in range(10**9) %}x{% endfor %}"}),
    ("/templates/{template}/test", {"to": NUL}),
    ("/campaigns", {"name": "c", "template_id": "424242", "list_ids": "{list}"}),
    ("/campaigns", {"name": "c", "template_id": "{template}", "list_ids": "424242"}),
    ("/campaigns", {"name": "c", "template_id": "{template}", "list_ids": "x"}),
    ("/campaigns/{campaign}/send", {"scheduled_at": "99999-01-01T00:00"}),
    ("/campaigns/{campaign}/test", {"emails": "a@b.c\n" * 60}),
    ("/campaigns/{campaign}/resume", {}),
    ("/automations/{flow}/definition", {"definition": "[]"}),
    ("/automations/{flow}/definition", {"definition": '{"steps": 5}'}),
    ("/automations/{flow}/definition", {"definition": '{"name": null}'}),
    ("/automations/{flow}/definition", {"definition": '{"id": 1, "counts": {}, "wait": 1}'}),
    ("/automations", {"definition": "1e999999"}),
]


@pytest.mark.parametrize(("path", "data"), POSTS)
def test_odd_forms_get_a_clear_answer(
    admin: Client, ids: dict[str, int], path: str, data: dict[str, str]
) -> None:
    form = {k: str(ids[v[1:-1]]) if v[1:-1] in ids else v for k, v in data.items()}
    response = admin.submit(path.format(**ids), form)
    assert response.status_code < 500
    assert response.status_code in (200, 303, 400, 404, 409, 422), response.status_code
