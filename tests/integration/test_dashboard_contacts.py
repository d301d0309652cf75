"""The dashboard's contacts and lists pages against the real app and services (both backends):
search, pagination, a contact's timeline, create and edit, list membership, delete and erase;
a viewer refused every change, bad input a 422 page, an unknown id a 404 page."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from hookhub.services import Services
from hookhub.store.dashboard_people import contacts_by_attribute
from hookhub.store.emails import EmailStore
from tests.support.automations import automation, enrol
from tests.support.inbound import create_hook, raw_client

Client = Any


@pytest.fixture
def admin(dashboard_client: Any) -> Client:
    return dashboard_client("admin")


@pytest.fixture
def viewer(dashboard_client: Any) -> Client:
    return dashboard_client("viewer")


def make_contact(services: Services, email: str, **attributes: Any) -> int:
    with services.crm.transaction() as crm:
        contact, _ = crm.create_contact(email, attributes=attributes)
    return contact.id


def make_list(services: Services, name: str) -> int:
    with services.crm.transaction() as crm:
        return crm.lists.create(name, crm.now).id


def rows(html: str) -> list[str]:
    """The emails linked from a page's table rows, in order."""
    return re.findall(r'<a href="/contacts/\d+">([^<]+)</a>', html)


def test_contacts_page_lists_searches_and_pages(admin: Client, services: Services) -> None:
    for n in range(55):
        make_contact(services, f"user{n:02d}@example.com", PLAN="pro" if n % 10 == 0 else "free")
    make_contact(services, "ann@other.org", PLAN="team")

    first = admin.get("/contacts")
    assert first.status_code == 200
    assert len(rows(first.text)) == 50
    cursor = re.search(r'href="/contacts\?cursor=([^"]+)"', first.text)
    assert cursor is not None
    second = admin.get(f"/contacts?cursor={cursor.group(1)}")
    assert len(rows(second.text)) == 6
    assert "ann@other.org" in rows(second.text)

    prefix = admin.get("/contacts", params={"q": "USER0"})
    assert rows(prefix.text) == [f"user0{n}@example.com" for n in range(10)]

    by_attribute = admin.get("/contacts", params={"q": "plan=PRO"})
    assert rows(by_attribute.text) == [f"user{n:02d}@example.com" for n in range(0, 55, 10)]

    bad = admin.get("/contacts", params={"q": "1plan=x"})
    assert bad.status_code == 422
    assert "must start with a letter" in bad.text


def test_attribute_search_scans_a_window_and_goes_on(services: Services) -> None:
    ids = [make_contact(services, f"w{n}@example.com", TIER=str(n % 3)) for n in range(10)]
    with services.db.read() as conn:
        first = contacts_by_attribute(conn, "TIER", "0", after_id=None, window=4)
        assert [c.id for c in first.items] == [ids[0], ids[3]]
        assert first.next_after == ids[3]
        second = contacts_by_attribute(conn, "TIER", "0", after_id=first.next_after, window=4)
        assert [c.id for c in second.items] == [ids[6]]
        third = contacts_by_attribute(conn, "TIER", "0", after_id=second.next_after, window=4)
        assert [c.id for c in third.items] == [ids[9]]
        assert third.next_after is None


def test_create_edit_and_lists_of_a_contact(admin: Client, services: Services) -> None:
    vip = make_list(services, "VIP")
    created = admin.submit(
        "/contacts", {"email": "New@Example.com", "attributes": "FIRSTNAME=Nia\nAGE=41"}
    )
    assert created.status_code == 303
    location = created.headers["location"]
    contact_id = int(location.rsplit("/", 1)[1])
    with services.crm.reader() as crm:
        stored = crm.find_contact(contact_id)
    assert stored.email == "new@example.com"
    assert stored.attributes == {"FIRSTNAME": "Nia", "AGE": "41"}

    edited = admin.submit(
        f"/contacts/{contact_id}/attributes",
        {"email": "new@example.com", "attributes": "FIRSTNAME=Nina\nCITY=Oslo"},
    )
    assert edited.status_code == 303
    added = admin.submit(f"/contacts/{contact_id}/lists", {"list_id": str(vip)})
    assert added.status_code == 303
    with services.crm.reader() as crm:
        stored = crm.find_contact(contact_id)
        crm.contacts.attach_list_ids([stored])
    assert stored.attributes == {"FIRSTNAME": "Nina", "CITY": "Oslo"}
    assert stored.list_ids == [vip]

    page = admin.get(f"/contacts/{contact_id}")
    assert page.status_code == 200
    assert "Nina" in page.text
    assert 'href="/lists/' in page.text

    removed = admin.submit(f"/contacts/{contact_id}/lists/{vip}/remove")
    assert removed.status_code == 303
    with services.crm.reader() as crm:
        again = crm.find_contact(contact_id)
        crm.contacts.attach_list_ids([again])
    assert again.list_ids == []


def test_bad_input_is_a_422_page_with_the_error_by_the_field(
    admin: Client, services: Services
) -> None:
    contact_id = make_contact(services, "taken@example.com")
    bad_email = admin.submit("/contacts", {"email": "not-an-email"})
    assert bad_email.status_code == 422
    assert 'id="email-error"' in bad_email.text
    assert "not a valid email" in bad_email.text
    taken = admin.submit("/contacts", {"email": "taken@example.com"})
    assert taken.status_code == 422
    assert "exists" in taken.text
    bad_lines = admin.submit(f"/contacts/{contact_id}/attributes", {"attributes": "no equals sign"})
    assert bad_lines.status_code == 422
    assert 'id="attributes-error"' in bad_lines.text
    no_list = admin.submit(f"/contacts/{contact_id}/lists", {"list_id": "999"})
    assert no_list.status_code == 422
    unconfirmed = admin.submit(f"/contacts/{contact_id}/delete", {})
    assert unconfirmed.status_code == 422
    with services.crm.reader() as crm:
        assert crm.find_contact(contact_id).attributes == {}


def test_unknown_ids_are_404_pages(admin: Client) -> None:
    for path in ("/contacts/424242", "/lists/424242", "/contacts/99999999999999999999"):
        response = admin.get(path)
        assert response.status_code == 404, path
        assert "<html" in response.text.lower()
    assert admin.submit("/contacts/424242/attributes", {"attributes": ""}).status_code == 404


def test_a_viewer_sees_but_changes_nothing(viewer: Client, services: Services) -> None:
    contact_id = make_contact(services, "keep@example.com", PLAN="pro")
    list_id = make_list(services, "Keep")
    assert viewer.get("/contacts").status_code == 200
    page = viewer.get(f"/contacts/{contact_id}")
    assert page.status_code == 200
    assert 'action="/contacts/' not in page.text  # no change forms for a viewer
    attempts = [
        ("/contacts", {"email": "sneaky@example.com"}),
        (f"/contacts/{contact_id}/attributes", {"attributes": "PLAN=free"}),
        (f"/contacts/{contact_id}/lists", {"list_id": str(list_id)}),
        (f"/contacts/{contact_id}/lists/{list_id}/remove", {}),
        (f"/contacts/{contact_id}/delete", {"confirm": "yes"}),
        (f"/contacts/{contact_id}/delete", {"confirm": "yes", "mode": "erase"}),
        ("/lists", {"name": "Sneaky"}),
        (f"/lists/{list_id}/rename", {"name": "Renamed"}),
        (f"/lists/{list_id}/members", {"emails": "keep@example.com"}),
        (f"/lists/{list_id}/delete", {"confirm": "yes"}),
    ]
    for path, data in attempts:
        response = viewer.submit(path, data)
        assert response.status_code == 403, path
        assert "Viewers cannot change anything" in response.text
    with services.crm.reader() as crm:
        contact = crm.find_contact(contact_id)
        crm.contacts.attach_list_ids([contact])
        assert contact.attributes == {"PLAN": "pro"}
        assert contact.list_ids == []
        assert [lst.name for lst in crm.lists.page(after_id=None, limit=10)] == ["Keep"]


def test_delete_and_erase(admin: Client, services: Services) -> None:
    gone = make_contact(services, "gone@example.com")
    erased = make_contact(services, "erased@example.com")
    with services.crm.transaction() as crm:
        crm.track_event("signed_up", identifiers={"contact_id": erased})
    deleted = admin.submit(f"/contacts/{gone}/delete", {"confirm": "yes"})
    assert deleted.status_code == 303
    wiped = admin.submit(f"/contacts/{erased}/delete", {"confirm": "yes", "mode": "erase"})
    assert wiped.status_code == 303
    assert admin.get(f"/contacts/{gone}").status_code == 404
    assert admin.get(f"/contacts/{erased}").status_code == 404
    with services.crm.reader() as crm:
        assert crm.events.page(after_id=None, limit=10, contact_id=erased) == []


def test_lists_pages(admin: Client, services: Services) -> None:
    ids = [make_contact(services, f"m{n:02d}@example.com") for n in range(52)]
    created = admin.submit("/lists", {"name": "Customers"})
    assert created.status_code == 303
    list_id = int(created.headers["location"].rsplit("/", 1)[1])
    duplicate = admin.submit("/lists", {"name": "Customers"})
    assert duplicate.status_code == 409
    assert "exists" in duplicate.text
    empty = admin.submit("/lists", {"name": "  "})
    assert empty.status_code == 422
    emails = "\n".join(f"m{n:02d}@example.com" for n in range(52))
    added = admin.submit(f"/lists/{list_id}/members", {"emails": emails})
    assert added.status_code == 200
    assert "Added 52" in added.text
    unknown = admin.submit(f"/lists/{list_id}/members", {"emails": "nobody@example.com"})
    assert unknown.status_code == 422
    assert "nobody@example.com" in unknown.text

    index = admin.get("/lists")
    assert "Customers" in index.text
    assert "<td>52</td>" in index.text
    page = admin.get(f"/lists/{list_id}")
    assert len(rows(page.text)) == 50
    cursor = re.search(rf'href="/lists/{list_id}\?cursor=([^"]+)"', page.text)
    assert cursor is not None
    rest = admin.get(f"/lists/{list_id}?cursor={cursor.group(1)}")
    assert rows(rest.text) == ["m50@example.com", "m51@example.com"]

    renamed = admin.submit(f"/lists/{list_id}/rename", {"name": "Clients"})
    assert renamed.status_code == 303
    assert "Clients" in admin.get(f"/lists/{list_id}").text
    deleted = admin.submit(f"/lists/{list_id}/delete", {"confirm": "yes"})
    assert deleted.status_code == 303
    assert admin.get(f"/lists/{list_id}").status_code == 404
    with services.crm.reader() as crm:
        assert crm.contacts.existing_ids(ids) == set(ids)  # the contacts stay


def test_a_contacts_timeline_merges_every_source(
    admin: Client, client: Any, services: Services
) -> None:
    """Webhook in (the inbound request whose rule created it), webhooks out (contact.created,
    event.tracked with their deliveries), its event, its email and its automation steps, newest
    first, on one page; and the older part a page at a time."""
    endpoint = client.post(
        "/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["contact.*"]}
    )
    assert endpoint.status_code == 201, endpoint.text
    rules = [{"contact": {"email": "email"}, "event": {"name": "form_sent"}}]
    hook = create_hook(client, "generic", rules=rules, name="Signup form")
    with raw_client(client) as sender:
        assert sender.post(hook.path, json={"email": "tl@example.com"}).status_code == 202
    assert services.inbound.process_backlog() == 1
    with services.crm.reader() as crm:
        contact_id = crm.find_contact("tl@example.com").id
    sent = client.post(
        "/api/v1/emails",
        json={"to": [{"email": "tl@example.com"}], "subject": "Hello", "html": "<p>Hi</p>"},
    )
    assert sent.status_code == 202, sent.text
    flow = automation(client, [{"id": "pause", "wait": "1d"}], name="Nurture")
    enrol(client, flow["id"], contact_id)

    page = admin.get(f"/contacts/{contact_id}")
    assert page.status_code == 200, page.text
    html = page.text
    assert "Signup form" in html
    assert "/inbound/" in html
    assert "contact.created" in html
    assert f"/outbound/{endpoint.json()['id']}/deliveries/" in html
    assert "form_sent" in html  # its custom event
    assert "entered Nurture" in html  # the automation
    assert html.index("entered Nurture") < html.index("contact.created")  # newest first

    # The email's timeline starts once it has an event beyond "queued": give it one.
    email_id = sent.json()["data"][0]["id"]
    with services.db.write() as conn:
        EmailStore(conn).add_events([(email_id, "sent", time.time(), None)])
    assert f'href="/emails/{email_id}"' in admin.get(f"/contacts/{contact_id}").text

    partial = admin.get(f"/contacts/{contact_id}/timeline")
    assert partial.status_code == 200
    assert "<html" not in partial.text.lower()
    assert admin.get(f"/contacts/{contact_id}/timeline?cursor=garbage!").status_code == 400


def test_the_timeline_pages_through_many_entries(admin: Client, services: Services) -> None:
    contact_id = make_contact(services, "busy@example.com")
    with services.crm.transaction() as crm:
        for n in range(70):
            crm.track_event(f"step_{n:02d}", identifiers={"contact_id": contact_id})
    seen: list[str] = []
    path = f"/contacts/{contact_id}/timeline"
    for _ in range(10):
        part = admin.get(path)
        assert part.status_code == 200
        seen += re.findall(r'class="timeline-title">(step_\d+)<', part.text)
        more = re.search(r'hx-get="([^"]+)"', part.text)
        if more is None:
            break
        path = more.group(1).replace("&amp;", "&")
    assert sorted(seen, reverse=True) == [f"step_{n:02d}" for n in reversed(range(70))]
    assert len(seen) == len(set(seen)) == 70


def test_every_form_carries_the_sessions_csrf_token(
    admin: Client, client: Any, services: Services
) -> None:
    """The forms as the pages render them (not the test client's token) pass the CSRF check."""
    contact_id = make_contact(services, "forms@example.com")
    list_id = make_list(services, "Forms")
    template = client.post(
        "/api/v1/email-templates", json={"name": "F", "subject": "S", "html": "<p>H</p>"}
    ).json()
    campaign = client.post(
        "/api/v1/campaigns",
        json={"name": "F", "template_id": template["id"], "list_ids": [list_id]},
    ).json()
    flow = automation(client, [{"wait": "1h"}], name="Forms")
    pages = [
        "/contacts",
        f"/contacts/{contact_id}",
        "/lists",
        f"/lists/{list_id}",
        "/templates/new",
        f"/templates/{template['id']}",
        "/campaigns/new",
        f"/campaigns/{campaign['id']}",
        "/automations/new",
        f"/automations/{flow['id']}",
    ]
    for path in pages:
        html = admin.get(path).text
        forms = re.findall(r"<form method=\"post\"", html)
        tokens = re.findall(r'name="csrf_token" value="([^"]*)"', html)
        assert forms, path
        assert len(tokens) >= len(forms), path
        assert set(tokens) == {admin.csrf_token}, path
    # posted exactly as the page has it
    page = admin.get("/lists").text
    token = re.findall(r'name="csrf_token" value="([^"]*)"', page)[-1]
    created = admin.post(
        "/lists", data={"name": "From the form", "csrf_token": token}, follow_redirects=False
    )
    assert created.status_code == 303


def test_the_timeline_goes_on_through_scan_windows(
    admin: Client, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages have no contact column: each page scans a window of them. With windows of 7
    messages, paging on finds every message about the contact once, in order, among many
    about others, and its events in between."""
    from hookhub.web.pages import contacts_timeline

    monkeypatch.setattr(contacts_timeline, "WINDOW", 7)
    me = make_contact(services, "me@example.com")
    others = [make_contact(services, f"other{n}@example.com") for n in range(3)]
    for n in range(12):
        with services.crm.transaction() as crm:
            crm.update_contact(crm.find_contact(me), attributes={"STEP": str(n)})
            for other in others:
                crm.update_contact(crm.find_contact(other), attributes={"STEP": str(n)})
        if n % 4 == 0:
            with services.crm.transaction() as crm:
                crm.track_event(f"milestone_{n}", identifiers={"contact_id": me})
    titles: list[str] = []
    path = f"/contacts/{me}/timeline"
    for _ in range(40):
        part = admin.get(path)
        assert part.status_code == 200
        titles += re.findall(r'class="timeline-title">([^<]+)<', part.text)
        more = re.search(r'hx-get="([^"]+)"', part.text)
        if more is None:
            break
        path = more.group(1).replace("&amp;", "&")
    else:
        pytest.fail("the timeline never ended")
    # contact.created, 12 contact.updated (one per step, its own), 3 events and their messages
    assert titles.count("contact.updated") == 12
    assert titles.count("contact.created") == 1
    assert titles.count("event.tracked") == 3
    assert [t for t in titles if t.startswith("milestone_")] == [
        "milestone_8",
        "milestone_4",
        "milestone_0",
    ]
    assert titles[-1] == "contact.created"
