"""The dashboard's email pages against the real app and services (both backends): templates
(editor, live preview of a draft, save, test send), campaigns (create, live stats, send, cancel,
test), the email log (filters) and one email (rendered and raw); a viewer refused every change,
bad input a 422 page, an unknown id a 404 page."""

from __future__ import annotations

import re
from typing import Any

import pytest

from hookhub.services import Services
from tests.support.email import email_worker, wait_for_status

Client = Any
GOOD_HTML = "<p>Hi {{ contact.FIRSTNAME or 'there' }}</p>"


@pytest.fixture
def admin(dashboard_client: Any) -> Client:
    return dashboard_client("admin")


@pytest.fixture
def viewer(dashboard_client: Any) -> Client:
    return dashboard_client("viewer")


def new_template(admin: Client, name: str = "Welcome") -> int:
    created = admin.submit(
        "/templates", {"name": name, "subject": "Hi {{ contact.FIRSTNAME }}", "html": GOOD_HTML}
    )
    assert created.status_code == 303, created.text
    return int(created.headers["location"].rsplit("/", 1)[1])


def new_list_with(services: Services, *emails: str) -> int:
    with services.crm.transaction() as crm:
        list_id = crm.lists.create("Readers", crm.now).id
        for email in emails:
            crm.create_contact(
                email, attributes={"FIRSTNAME": email[0].upper()}, list_ids=[list_id]
            )
    return list_id


def test_template_editor_create_preview_save_and_test_send(
    admin: Client, services: Services
) -> None:
    assert admin.get("/templates").status_code == 200
    editor = admin.get("/templates/new")
    assert editor.status_code == 200
    assert 'sandbox=""' in editor.text
    assert "srcdoc=" in editor.text
    assert 'hx-post="/templates/preview"' in editor.text

    template_id = new_template(admin)
    page = admin.get(f"/templates/{template_id}")
    assert page.status_code == 200
    # the preview renders the sample contact, escaped into the iframe's srcdoc
    assert "Hi Ann" in page.text
    assert "&lt;p&gt;Hi Ann&lt;/p&gt;" in page.text

    saved = admin.submit(
        f"/templates/{template_id}",
        {"name": "Welcome", "subject": "Hello {{ contact.email }}", "html": "<b>B</b>"},
    )
    assert saved.status_code == 303
    stored = admin.get(f"/api/v1/email-templates/{template_id}")  # not signed with a key: 401
    assert stored.status_code == 401
    with services.db.read() as conn:
        from hookhub.store.email_templates import EmailTemplateStore

        template = EmailTemplateStore(conn).get(template_id)
    assert template is not None
    assert template.subject == "Hello {{ contact.email }}"
    assert template.version == 2

    with services.crm.transaction() as crm:
        crm.create_contact("real@example.com", attributes={"FIRSTNAME": "Rea"})
    preview = admin.submit(
        "/templates/preview",
        {"subject": "Yo {{ contact.FIRSTNAME }}", "html": GOOD_HTML, "text": ""},
    )
    assert preview.status_code == 200
    assert "Yo Ann" in preview.text
    assert "<html" not in preview.text.lower()
    as_contact = admin.submit(
        "/templates/preview",
        {
            "subject": "Yo {{ contact.FIRSTNAME }}",
            "html": GOOD_HTML,
            "preview_contact": "real@example.com",
        },
    )
    assert "Yo Rea" in as_contact.text
    broken = admin.submit("/templates/preview", {"subject": "x", "html": "{{ contact."})
    assert broken.status_code == 200
    assert "does not compile" in broken.text
    assert 'role="alert"' in broken.text

    sent = admin.submit(f"/templates/{template_id}/test", {"to": "tester@example.com"})
    assert sent.status_code == 200
    found = re.search(r'href="/emails/(\d+)"', sent.text)
    assert found is not None
    email_id = int(found.group(1))
    with email_worker(services):
        [email] = wait_for_status(services, [email_id], {"sent"})
    assert email.kind == "test"
    assert email.to_email == "tester@example.com"
    assert email.subject == "Hello tester@example.com"

    detail = admin.get(f"/emails/{email_id}")
    assert detail.status_code == 200
    assert "Raw MIME source" in detail.text
    assert "Subject: Hello tester@example.com" in detail.text
    assert "&lt;b&gt;B&lt;/b&gt;" in detail.text  # the HTML, escaped into srcdoc
    listed = admin.get("/emails", params={"to": "TESTER@example.com", "status": "sent"})
    assert f'href="/emails/{email_id}"' in listed.text
    other = admin.get("/emails", params={"status": "bounced"})
    assert f'href="/emails/{email_id}"' not in other.text


def test_template_mistakes_are_422_with_the_error_by_the_field(admin: Client) -> None:
    bad = admin.submit("/templates", {"name": "x", "subject": "ok", "html": "{% if %}"})
    assert bad.status_code == 422
    assert 'id="html-error"' in bad.text
    assert "does not compile" in bad.text
    no_name = admin.submit("/templates", {"name": "", "subject": "ok", "html": "<p>x</p>"})
    assert no_name.status_code == 422
    assert 'id="name-error"' in no_name.text
    template_id = new_template(admin)
    bad_subject = admin.submit(
        f"/templates/{template_id}", {"name": "x", "subject": "{{ }", "html": "<p>x</p>"}
    )
    assert bad_subject.status_code == 422
    assert 'id="subject-error"' in bad_subject.text
    bad_to = admin.submit(f"/templates/{template_id}/test", {"to": "nobody"})
    assert bad_to.status_code == 422
    assert 'id="to-error"' in bad_to.text


def test_campaign_pages(admin: Client, services: Services) -> None:
    template_id = new_template(admin)
    list_id = new_list_with(services, "a@example.com", "b@example.com")
    form = admin.get("/campaigns/new")
    assert form.status_code == 200
    assert "Readers" in form.text

    missing = admin.submit("/campaigns", {"name": "Launch", "list_ids": str(list_id)})
    assert missing.status_code == 422
    assert 'id="template_id-error"' in missing.text
    no_list = admin.submit("/campaigns", {"name": "Launch", "template_id": str(template_id)})
    assert no_list.status_code == 422
    assert 'id="list_ids-error"' in no_list.text

    created = admin.submit(
        "/campaigns",
        {"name": "Launch", "template_id": str(template_id), "list_ids": str(list_id)},
    )
    assert created.status_code == 303, created.text
    campaign_id = int(created.headers["location"].rsplit("/", 1)[1])
    page = admin.get(f"/campaigns/{campaign_id}")
    assert page.status_code == 200
    assert "draft" in page.text

    conflict = admin.submit(f"/campaigns/{campaign_id}/pause")
    assert conflict.status_code == 409
    assert "cannot be paused" in conflict.text
    bad_time = admin.submit(f"/campaigns/{campaign_id}/send", {"scheduled_at": "tomorrow"})
    assert bad_time.status_code == 422
    test = admin.submit(f"/campaigns/{campaign_id}/test", {"emails": "qa@example.com"})
    assert test.status_code == 200
    assert "qa@example.com (queued)" in test.text

    scheduled = admin.submit(f"/campaigns/{campaign_id}/send", {"scheduled_at": "2999-01-01T09:00"})
    assert scheduled.status_code == 200
    assert "Scheduled." in scheduled.text
    sending = admin.submit(f"/campaigns/{campaign_id}/send", {"scheduled_at": ""})
    assert "Sending started." in sending.text
    stats = admin.get(f"/campaigns/{campaign_id}/stats")
    assert stats.status_code == 200
    assert 'hx-trigger="every 5s"' in stats.text
    assert "<html" not in stats.text.lower()
    listed = admin.get("/campaigns")
    assert "Launch" in listed.text
    assert "sending" in listed.text
    cancelled = admin.submit(f"/campaigns/{campaign_id}/cancel")
    assert "Cancelled." in cancelled.text
    assert admin.submit(f"/campaigns/{campaign_id}/fly").status_code == 404
    deleted = admin.submit(f"/campaigns/{campaign_id}/delete", {"confirm": "yes"})
    assert deleted.status_code == 303
    assert admin.get(f"/campaigns/{campaign_id}").status_code == 404


def test_a_viewer_changes_nothing(admin: Client, viewer: Client, services: Services) -> None:
    template_id = new_template(admin)
    list_id = new_list_with(services, "c@example.com")
    created = admin.submit(
        "/campaigns", {"name": "C", "template_id": str(template_id), "list_ids": str(list_id)}
    )
    campaign_id = int(created.headers["location"].rsplit("/", 1)[1])
    for path in (
        "/templates",
        f"/templates/{template_id}",
        "/campaigns",
        f"/campaigns/{campaign_id}",
        "/emails",
    ):
        assert viewer.get(path).status_code == 200, path
    attempts = [
        ("/templates", {"name": "v", "subject": "s", "html": "<p>h</p>"}),
        (f"/templates/{template_id}", {"name": "v", "subject": "s", "html": "<p>h</p>"}),
        (f"/templates/{template_id}/test", {"to": "v@example.com"}),
        (f"/templates/{template_id}/delete", {"confirm": "yes"}),
        ("/campaigns", {"name": "v", "template_id": str(template_id), "list_ids": str(list_id)}),
        *(
            (f"/campaigns/{campaign_id}/{a}", {"confirm": "yes", "emails": "v@example.com"})
            for a in ("send", "pause", "resume", "cancel", "test", "delete")
        ),
    ]
    for path, data in attempts:
        response = viewer.submit(path, data)
        assert response.status_code == 403, path
        assert "Viewers cannot change anything" in response.text
    # previewing changes nothing: a viewer may
    assert (
        viewer.submit("/templates/preview", {"subject": "s", "html": "<p>h</p>"}).status_code == 200
    )
    with services.db.read() as conn:
        from hookhub.store.campaigns import CampaignStore

        campaign = CampaignStore(conn).get(campaign_id)
    assert campaign is not None
    assert campaign.status == "draft"


def test_unknown_ids_and_bad_filters(admin: Client) -> None:
    for path in ("/templates/9999", "/campaigns/9999", "/emails/9999", "/campaigns/9999/stats"):
        response = admin.get(path)
        assert response.status_code == 404, path
    assert (
        admin.submit("/templates/9999", {"name": "x", "subject": "s", "html": "h"}).status_code
        == 404
    )
    assert admin.submit("/campaigns/9999/send").status_code == 404
    assert admin.get("/emails", params={"status": "lost"}).status_code == 422
    assert admin.get("/emails", params={"campaign_id": "x"}).status_code == 422
    assert admin.get("/emails", params={"to": "not an address"}).status_code == 422
    assert admin.get("/emails", params={"cursor": "???"}).status_code == 400
