"""The dashboard's automation pages against the real app and services (both backends): the list
with counts, the step tree with per-step counts, enable/disable, the definition editor (a
refused definition shows the error on the step it names), a contact's path; a viewer refused
every change, an unknown id a 404 page."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from hookhub.services import Services
from tests.support.automations import automation, contact, enrol, log

Client = Any
STEPS = [
    {"id": "pause", "wait": "1d"},
    {
        "id": "check",
        "if": "contact.attributes.PLAN == 'pro'",
        "then": [{"id": "thanks", "track_event": {"name": "pro_thanked"}}],
        "else": [{"id": "nudge", "track_event": {"name": "nudged"}}],
    },
]


@pytest.fixture
def admin(dashboard_client: Any) -> Client:
    return dashboard_client("admin")


@pytest.fixture
def viewer(dashboard_client: Any) -> Client:
    return dashboard_client("viewer")


def test_list_tree_counts_and_a_contacts_path(
    admin: Client, client: Any, services: Services
) -> None:
    flow = automation(client, STEPS, name="Onboarding")
    ann = contact(client, "ann@example.com", PLAN="pro")
    contact(client, "bob@example.com")
    enrollment = enrol(client, flow["id"], ann)
    now = time.time()
    log(services, enrollment, "pause", "wait", "completed", now - 5)
    log(services, enrollment, "check", "if", "completed", now - 4)

    listed = admin.get("/automations")
    assert listed.status_code == 200
    assert "Onboarding" in listed.text
    assert "<td>1</td>" in listed.text  # entered, active

    page = admin.get(f"/automations/{flow['id']}")
    assert page.status_code == 200
    html = page.text
    for step_id in ("pause", "check", "thanks", "nudge"):
        assert f'<code class="step-id">{step_id}</code>' in html
    # branches nest inside the branching step
    check = html.index('data-path="steps[1]"')
    assert (
        check
        < html.index('data-path="steps[1].then[0]"')
        < html.index('data-path="steps[1].else[0]"')
    )
    assert "entered 1 · waiting 0 · completed 1" in html  # the pause step's counts

    path = admin.get(f"/automations/{flow['id']}", params={"contact": "ANN@example.com"})
    assert path.status_code == 200
    assert f"Enrollment #{enrollment['id']}" in path.text
    assert path.text.count("on this contact's path") == 2  # pause and check
    never = admin.get(f"/automations/{flow['id']}", params={"contact": "bob@example.com"})
    assert "has never entered" in never.text
    unknown = admin.get(f"/automations/{flow['id']}", params={"contact": "who@example.com"})
    assert unknown.status_code == 200
    assert "No contact" in unknown.text


def test_enable_disable_and_edit_the_definition(
    admin: Client, client: Any, services: Services
) -> None:
    flow = automation(client, STEPS, name="Edit me")
    disabled = admin.submit(f"/automations/{flow['id']}/disable")
    assert disabled.status_code == 303
    assert services.automations.get(flow["id"])["enabled"] is False
    assert admin.submit(f"/automations/{flow['id']}/enable").status_code == 303
    assert services.automations.get(flow["id"])["enabled"] is True

    body = {"name": "Edited", "trigger": {"type": "manual"}, "steps": [{"id": "w", "wait": "2h"}]}
    saved = admin.submit(f"/automations/{flow['id']}/definition", {"definition": json.dumps(body)})
    assert saved.status_code == 303
    after = services.automations.get(flow["id"])
    assert after["name"] == "Edited"
    assert [s["id"] for s in after["steps"]] == ["w"]

    broken = {
        **body,
        "steps": [{"id": "w", "wait": "1h"}, {"if": "`true`", "then": [{"wait": "2 fortnights"}]}],
    }
    refused = admin.submit(
        f"/automations/{flow['id']}/definition", {"definition": json.dumps(broken)}
    )
    assert refused.status_code == 422
    assert "steps[1].then[0].wait" in refused.text
    # the error sits on the step it names, in the tree drawn from the draft
    step = re.search(r'data-path="steps\[1\]\.then\[0\]">(.*?)</li>', refused.text, re.S)
    assert step is not None
    assert "field-error" in step.group(1)
    assert "2 fortnights" in refused.text  # the draft is kept in the editor
    not_json = admin.submit(f"/automations/{flow['id']}/definition", {"definition": "{nope"})
    assert not_json.status_code == 422
    assert "not valid JSON" in not_json.text
    assert services.automations.get(flow["id"])["name"] == "Edited"


def test_create_and_delete(admin: Client, services: Services) -> None:
    assert admin.get("/automations/new").status_code == 200
    body = {"name": "Fresh", "trigger": {"type": "manual"}, "steps": [{"wait": "1h"}]}
    created = admin.submit("/automations", {"definition": json.dumps(body)})
    assert created.status_code == 303, created.text
    automation_id = int(created.headers["location"].rsplit("/", 1)[1])
    assert services.automations.get(automation_id)["name"] == "Fresh"
    bad = admin.submit("/automations", {"definition": json.dumps({**body, "steps": [{"fly": 1}]})})
    assert bad.status_code == 422
    assert "steps[0]" in bad.text
    unconfirmed = admin.submit(f"/automations/{automation_id}/delete")
    assert unconfirmed.status_code == 422
    deleted = admin.submit(f"/automations/{automation_id}/delete", {"confirm": "yes"})
    assert deleted.status_code == 303
    assert admin.get(f"/automations/{automation_id}").status_code == 404


def test_a_viewer_changes_nothing_and_unknown_ids_are_404(
    viewer: Client, client: Any, services: Services
) -> None:
    flow = automation(client, STEPS, name="Keep")
    assert viewer.get(f"/automations/{flow['id']}").status_code == 200
    body = json.dumps({"name": "x", "trigger": {"type": "manual"}, "steps": [{"wait": "1h"}]})
    for path, data in (
        (f"/automations/{flow['id']}/disable", {}),
        (f"/automations/{flow['id']}/enable", {}),
        (f"/automations/{flow['id']}/delete", {"confirm": "yes"}),
        (f"/automations/{flow['id']}/definition", {"definition": body}),
        ("/automations", {"definition": body}),
    ):
        response = viewer.submit(path, data)
        assert response.status_code == 403, path
    kept = services.automations.get(flow["id"])
    assert kept["name"] == "Keep"
    assert kept["enabled"] is True
    assert viewer.get("/automations/424242").status_code == 404
    assert viewer.submit("/automations/424242/fly").status_code == 403  # viewers: no change at all
