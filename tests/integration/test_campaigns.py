"""Campaigns on each backend: who the recipients are, the snapshot across crashes, pause,
resume, cancel, schedules and test sends, as a user of the API sees them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from hookhub.crm.operations import CrmTx
from hookhub.email.ledger import Attempt, EmailLedger, crm_unsubscriber
from hookhub.services import Services
from hookhub.store.campaign_emails import CampaignEmails
from hookhub.store.email_reads import EmailReads
from hookhub.store.emails import EmailStore, EmailUpdate
from hookhub.store.schema_email import campaigns
from tests.support.campaigns import (
    C,
    block,
    campaign_emails,
    drain,
    loop_at,
    make_campaign,
    make_contact,
    make_list,
    send,
)


def test_recipients_are_list_members_minus_exclusions_unsubscribed_and_blocked(
    client: Any, services: Services
) -> None:
    news, offers, staff = (make_list(client, name) for name in ("News", "Offers", "Staff"))
    make_contact(client, "ada@example.com", [news])
    make_contact(client, "both@example.com", [news, offers])
    make_contact(client, "bob@example.com", [offers])
    make_contact(client, "staff@example.com", [news, staff])
    make_contact(client, "gone@example.com", [news], unsubscribed=True)
    block(services, make_contact(client, "bounced@example.com", [offers]))
    make_contact(client, "nolist@example.com")
    campaign = make_campaign(client, [news, offers], exclude_list_ids=[staff])
    assert campaign["status"] == "draft"
    assert campaign["stats"]["recipients"] == 0
    assert campaign_emails(services, campaign["id"]) == []

    started = send(client, campaign["id"])
    assert started["status"] == "sending"
    make_contact(client, "late@example.com", [news])  # joined after sending started
    drain(loop_at(services, batch=1))

    rows = campaign_emails(services, campaign["id"])
    assert sorted(r.to_email for r in rows) == [
        "ada@example.com",
        "bob@example.com",
        "both@example.com",
    ]
    assert {r.kind for r in rows} == {"campaign"}
    assert {r.params for r in rows} == {'{"offer":"20% off"}'}
    assert {r.status for r in rows} == {"queued"}
    assert len({r.message_id for r in rows}) == 3
    assert all(r.message_id.endswith("@localhost") for r in rows)
    after = client.get(f"{C}/{campaign['id']}").json()
    assert after["snapshot_done"] is True
    assert after["stats"]["recipients"] == 3
    assert after["status"] == "sending"  # its emails still wait to be sent


def test_a_snapshot_cut_by_a_crash_resumes_and_queues_each_contact_once(
    client: Any, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = make_list(client, "Members")
    addresses = [f"m{n:02d}@example.com" for n in range(30)]
    for address in addresses:
        make_contact(client, address, [members])
    campaign = make_campaign(client, [members])
    send(client, campaign["id"])

    first = loop_at(services, batch=4)
    assert first.step()  # leases the campaign and queues one batch
    assert first.step()
    assert len(campaign_emails(services, campaign["id"])) == 8

    original = CampaignEmails.snapshot_batch

    def crash_after_insert(self: CampaignEmails, *args: Any, **kwargs: Any) -> Any:
        original(self, *args, **kwargs)  # the batch is written, then the process dies
        raise RuntimeError("killed")

    monkeypatch.setattr(CampaignEmails, "snapshot_batch", crash_after_insert)
    with pytest.raises(RuntimeError):
        first.step()
    monkeypatch.undo()
    assert len(campaign_emails(services, campaign["id"])) == 8  # the batch rolled back

    # Another worker: the campaign stays leased to the dead one until the lease runs out.
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert loop_at(services, later).step() is False
    second = loop_at(services, later + timedelta(seconds=60), batch=4)
    drain(second)
    rows = campaign_emails(services, campaign["id"])
    assert sorted(r.to_email for r in rows) == addresses

    # Even a cursor moved back (a bug, a restore) never queues a contact twice.
    with services.db.write() as conn:
        conn.execute(
            update(campaigns)
            .where(campaigns.c.id == campaign["id"])
            .values(snapshot_cursor=0, snapshot_done=False)
        )
    drain(loop_at(services, batch=7))
    assert len(campaign_emails(services, campaign["id"])) == 30


def _claimable(services: Services, campaign_id: int) -> set[int]:
    """Ids of the campaign's emails a worker could claim now (claimed and given back)."""
    at = datetime.now(UTC).timestamp() + 1
    with services.db.dry_run() as conn:
        claimed = EmailStore(conn).claim_due("probe", at, at + 60, 10_000)
    return {c.email.id for c in claimed if c.email.campaign_id == campaign_id}


def test_pause_holds_emails_and_the_snapshot_resume_releases_cancel_skips(
    client: Any, services: Services
) -> None:
    members = make_list(client, "Members")
    for n in range(6):
        make_contact(client, f"p{n}@example.com", [members])
    campaign = make_campaign(client, [members])
    cid = campaign["id"]
    assert client.post(f"{C}/{cid}/pause").status_code == 409  # a draft does not pause
    send(client, cid)
    loop = loop_at(services, batch=2)
    assert loop.step()  # two recipients queued
    assert len(campaign_emails(services, cid)) == 2

    paused = client.post(f"{C}/{cid}/pause")
    assert paused.status_code == 200
    assert paused.json()["status"] == "paused"
    drain(loop)  # the snapshot stops while paused
    assert len(campaign_emails(services, cid)) == 2
    assert _claimable(services, cid) == set()
    assert {r.next_attempt_at for r in campaign_emails(services, cid)} == {None}
    assert client.post(f"{C}/{cid}/pause").status_code == 409
    assert client.patch(f"{C}/{cid}", json={"name": "x"}).status_code == 409

    resumed = client.post(f"{C}/{cid}/resume")
    assert resumed.status_code == 200
    assert resumed.json()["status"] == "sending"
    assert client.post(f"{C}/{cid}/resume").status_code == 409
    assert client.delete(f"{C}/{cid}").status_code == 409  # sending
    drain(loop)
    rows = campaign_emails(services, cid)
    assert len(rows) == 6
    assert _claimable(services, cid) == {r.id for r in rows}

    cancelled = client.post(f"{C}/{cid}/cancel")
    assert cancelled.status_code == 200
    body = cancelled.json()
    assert body["status"] == "cancelled"
    assert body["stats"]["skipped"] == 6
    rows = campaign_emails(services, cid)
    assert {(r.status, r.status_reason) for r in rows} == {("skipped", "campaign cancelled")}
    email = client.get(f"/api/v1/emails/{rows[0].id}")
    assert email.status_code == 200, email.text
    assert email.json()["status_reason"] == "campaign cancelled"
    assert [e["type"] for e in email.json()["events"]] == ["skipped"]
    listed = client.get("/api/v1/emails", params={"campaign_id": cid, "status": "skipped"})
    assert len(listed.json()["data"]) == 6
    assert _claimable(services, cid) == set()
    for action in ("pause", "resume", "cancel", "send"):
        assert client.post(f"{C}/{cid}/{action}").status_code == 409, action
    assert client.delete(f"{C}/{cid}").status_code == 204
    assert client.get(f"{C}/{cid}").status_code == 404


def test_a_scheduled_campaign_starts_when_due(client: Any, services: Services) -> None:
    members = make_list(client, "Members")
    make_contact(client, "ada@example.com", [members])
    campaign = make_campaign(client, [members])
    when = datetime.now(UTC) + timedelta(hours=1)
    scheduled = send(client, campaign["id"], scheduled_at=when.isoformat())
    assert scheduled["status"] == "scheduled"
    assert scheduled["scheduled_at"].startswith(when.strftime("%Y-%m-%dT%H:%M"))
    renamed = client.patch(f"{C}/{campaign['id']}", json={"name": "Later news"})
    assert renamed.status_code == 200  # a scheduled campaign can still change
    assert drain(loop_at(services)) == 0
    assert campaign_emails(services, campaign["id"]) == []

    drain(loop_at(services, when + timedelta(seconds=1)))
    started = client.get(f"{C}/{campaign['id']}").json()
    assert started["status"] == "sending"
    assert started["started_at"] is not None
    assert [r.to_email for r in campaign_emails(services, campaign["id"])] == ["ada@example.com"]

    # A time in the past starts at once.
    other = make_campaign(client, [members], name="Now")
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert send(client, other["id"], scheduled_at=past)["status"] == "sending"


def test_test_sends_go_to_any_address_and_are_not_the_campaigns(
    client: Any, services: Services
) -> None:
    members = make_list(client, "Members")
    make_contact(client, "ada@example.com", [members], attributes={"FIRSTNAME": "Ada"})
    block(services, make_contact(client, "blocked@example.com"))
    campaign = make_campaign(client, [members])
    response = client.post(
        f"{C}/{campaign['id']}/test",
        json={"emails": ["ada@example.com", "Boss@Example.com", "blocked@example.com"]},
    )
    assert response.status_code == 202, response.text
    sent = {e["to"]: e for e in response.json()["data"]}
    assert sent["ada@example.com"]["status"] == "queued"
    assert sent["boss@example.com"]["status"] == "queued"
    assert sent["blocked@example.com"]["status"] == "skipped"
    with services.db.read() as conn:
        store = EmailReads(conn)
        tests = [store.get(e["id"]) for e in sent.values()]
    assert {e.kind for e in tests if e} == {"test"}
    assert {e.campaign_id for e in tests if e} == {None}
    ada = next(e for e in tests if e and e.to_email == "ada@example.com")
    assert ada.contact_id is not None  # personalised from the contact
    assert ada.content is not None
    assert ada.content["subject"] == "News for {{ contact.FIRSTNAME }}"
    assert ada.params == {"offer": "20% off"}
    stats = client.get(f"{C}/{campaign['id']}").json()["stats"]
    assert stats["recipients"] == 0
    assert client.get(f"{C}/{campaign['id']}").json()["status"] == "draft"


def test_template_content_is_copied_when_sending_starts(client: Any, services: Services) -> None:
    template = client.post(
        "/api/v1/email-templates",
        json={
            "name": "Monthly",
            "subject": "Monthly for {{ contact.email }}",
            "html": "<h1>Monthly</h1>",
            "sender": {"email": "news@shop.example", "name": "Shop"},
            "tags": ["monthly"],
        },
    )
    assert template.status_code == 201, template.text
    template_id = template.json()["id"]
    members = make_list(client, "Members")
    make_contact(client, "ada@example.com", [members])
    draft = client.post(
        C, json={"name": "Monthly", "template_id": template_id, "list_ids": [members]}
    )
    assert draft.status_code == 201, draft.text
    assert draft.json()["subject"] is None
    started = send(client, draft.json()["id"])
    assert started["subject"] == "Monthly for {{ contact.email }}"
    assert started["sender"] == {"email": "news@shop.example", "name": "Shop"}
    assert started["tags"] == ["monthly"]
    edited = client.patch(f"/api/v1/email-templates/{template_id}", json={"subject": "Changed"})
    assert edited.status_code == 200, edited.text  # edited while the campaign is under way
    drain(loop_at(services))
    assert client.get(f"{C}/{started['id']}").json()["subject"] == started["subject"]
    (row,) = campaign_emails(services, started["id"])
    assert row.template_id is None  # the campaign's copy is what is rendered
    assert row.message_id.endswith("@shop.example")
    assert row.tags == '["monthly"]'
    # A template deleted before a draft is sent: the send is refused, naming it.
    other = client.post(
        C, json={"name": "Gone", "template_id": template_id, "list_ids": [members]}
    ).json()
    assert client.delete(f"/api/v1/email-templates/{template_id}").status_code == 204
    refused = client.post(f"{C}/{other['id']}/send")
    assert refused.status_code == 422
    assert refused.json()["error"]["details"]["template_id"] == template_id


def test_campaigns_are_listed_newest_first_by_pages(client: Any) -> None:
    members = make_list(client, "Members")
    ids = [make_campaign(client, [members], name=f"c{n}")["id"] for n in range(3)]
    first = client.get(C, params={"limit": 2}).json()
    assert [c["id"] for c in first["data"]] == ids[::-1][:2]
    assert all(c["stats"] is None for c in first["data"])
    rest = client.get(C, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [c["id"] for c in rest["data"]] == ids[:1]
    assert rest["next_cursor"] is None


def test_patch_switches_between_template_and_inline_content(
    client: Any, services: Services
) -> None:
    members = make_list(client, "Members")
    campaign = make_campaign(client, [members])
    cid = campaign["id"]
    patched = client.patch(
        f"{C}/{cid}", json={"subject": "New subject", "exclude_list_ids": [members]}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["subject"] == "New subject"
    assert patched.json()["html"] == campaign["html"]
    assert patched.json()["exclude_list_ids"] == [members]
    for body in (
        {"name": None},
        {"list_ids": []},
        {"list_ids": [999]},
        {"template_id": 999},
        {"template_id": None},
        {"html": "{% if %}"},
        {"reply_to": "not an address"},
    ):
        response = client.patch(f"{C}/{cid}", json=body)
        assert response.status_code == 422, (body, response.text)
    assert client.get(f"{C}/{cid}").json()["subject"] == "New subject"


def _payloads(services: Services, event_type: str) -> list[dict[str, Any]]:
    from hookhub.core import jsoncodec
    from hookhub.store.schema import messages

    with services.db.read() as conn:
        query = select(messages.c.payload).where(messages.c.type == event_type)
        return [jsoncodec.loads(p)["data"] for p in conn.execute(query).scalars()]


def test_stats_count_outcomes_and_reports_recorded_through_the_ledger(
    client: Any, services: Services
) -> None:
    members = make_list(client, "Members")
    for n in range(7):
        make_contact(client, f"s{n}@example.com", [members])
    campaign = make_campaign(client, [members], tags=["dec"])
    cid = campaign["id"]
    send(client, cid)
    loop = loop_at(services)
    drain(loop)
    at = datetime.now(UTC).timestamp() + 1
    with services.db.write() as conn:
        claimed = {
            c.email.to_email: c.email for c in EmailStore(conn).claim_due("w", at, at + 60, 100)
        }
    assert len(claimed) == 7

    def outcome(address: str, status: str, reason: str | None = None) -> Attempt:
        email = claimed[address]
        sent = status == "sent"
        next_at = at + 60 if status == "deferred" else None
        return Attempt(email, EmailUpdate(email.id, status, reason, 1, next_at, sent=sent))

    now = datetime.now(UTC)
    with services.db.write() as conn:
        ledger = EmailLedger(conn, services.outbox.writer(conn), now)
        recorded = ledger.record_attempts(
            "w",
            [
                *(outcome(f"s{n}@example.com", "sent") for n in range(5)),
                outcome("s5@example.com", "bounced", "550 no such user"),
                outcome("s6@example.com", "deferred", "451 later"),
            ],
        )
    assert len(recorded) == 7
    with services.db.write() as conn:
        crm = CrmTx(conn, services.outbox.writer(conn), now)
        ledger = EmailLedger(conn, crm.outbox, now, unsubscribe=crm_unsubscriber(crm))
        store = EmailReads(conn)

        def email(n: int) -> Any:
            return store.get(claimed[f"s{n}@example.com"].id, with_events=False)

        ledger.report(email(0), "delivered")
        ledger.report(email(0), "opened")
        ledger.report(email(0), "opened")
        ledger.report(email(1), "clicked", {"url": "https://shop.example/a"})  # an open too
        ledger.report(email(1), "clicked", {"url": "https://shop.example/b"})
        ledger.report(email(2), "bounced", {"bounce_type": "soft", "reason": "mailbox full"})
        ledger.report(email(2), "bounced", {"bounce_type": "soft", "reason": "mailbox full"})
        ledger.report(email(3), "complained")
        ledger.report(email(4), "unsubscribed")
    stats = client.get(f"{C}/{cid}").json()["stats"]
    assert stats == {
        "recipients": 7,
        "sent": 5,
        "delivered": 1,
        "opened_unique": 2,
        "clicked_unique": 1,
        "bounced_hard": 1,
        "bounced_soft": 1,
        "complained": 1,
        "unsubscribed": 1,
        "failed": 0,
        "skipped": 0,
    }
    # A deferred email keeps the campaign sending; once it has failed, the campaign is sent.
    drain(loop)
    assert client.get(f"{C}/{cid}").json()["status"] == "sending"
    with services.db.write() as conn:
        (again,) = EmailStore(conn).claim_due("w", at + 61, at + 121, 100)
        ledger = EmailLedger(conn, services.outbox.writer(conn), now)
        ledger.record_attempts(
            "w", [Attempt(again.email, EmailUpdate(again.email.id, "failed", "451 later", 2, None))]
        )
    drain(loop)
    done = client.get(f"{C}/{cid}").json()
    assert done["status"] == "sent"
    assert done["finished_at"] is not None
    assert done["stats"]["failed"] == 1

    # Events: every email.* message names the campaign; the unsubscribe names it too.
    for event_type in ("email.sent", "email.bounced", "email.opened", "email.clicked"):
        payloads = _payloads(services, event_type)
        assert payloads, event_type
        assert {p["campaign_id"] for p in payloads} == {cid}, event_type
        assert {tuple(p["tags"]) for p in payloads} == {("dec",)}
    (unsubscribed,) = _payloads(services, "contact.unsubscribed")
    assert unsubscribed["campaign_id"] == cid
    assert unsubscribed["email_id"] == claimed["s4@example.com"].id
    assert unsubscribed["source"] == "email"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": "x", "list_ids": [1]},  # no content
        {"name": "x", "list_ids": [], "subject": "s", "html": "h"},
        {"name": "x", "list_ids": [999], "subject": "s", "html": "h"},
        {"name": "x", "list_ids": [1], "exclude_list_ids": [998], "subject": "s", "html": "h"},
        {"name": "x", "list_ids": [1], "template_id": 999},
        {"name": "x", "list_ids": [1], "template_id": 1, "subject": "s", "html": "h"},
        {"name": "x", "list_ids": [1], "subject": "s"},
        {"name": "x", "list_ids": [1], "subject": "{{ broken", "html": "h"},
        {"name": "x", "list_ids": [1], "subject": "s", "html": "{% for %}"},
        {"name": "x", "list_ids": [1], "subject": "s", "html": "h", "sender": {"email": "nope"}},
        {"name": "x", "list_ids": [1], "subject": "s", "html": "h", "reply_to": "a@"},
        {"name": "x", "list_ids": ["1"], "subject": "s", "html": "h"},
        {"name": "x", "list_ids": [1], "subject": "s", "html": "h", "params": []},
        {"name": "x", "list_ids": [1], "subject": "s", "html": "h", "tags": [""]},
        {"name": "x", "list_ids": [1], "subject": "s", "html": "h", "track_opens": "yes"},
        {"name": "x", "list_ids": [1], "subject": "s", "html": "h", "surprise": 1},
        {"name": "x", "list_ids": [2**60], "subject": "s", "html": "h"},
        {"name": "\x00", "list_ids": [1], "subject": "s", "html": "h"},
    ],
)
def test_bad_campaigns_are_422_and_create_nothing(client: Any, body: dict[str, Any]) -> None:
    make_list(client, "Members")
    response = client.post(C, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"]
    assert client.get(C).json()["data"] == []


def test_bad_requests_on_campaigns_are_4xx(client: Any) -> None:
    members = make_list(client, "Members")
    cid = make_campaign(client, [members])["id"]
    for method, path, body in [
        ("get", f"{C}/999", None),
        ("post", f"{C}/999/send", {}),
        ("post", f"{C}/999/test", {"emails": ["a@example.com"]}),
        ("delete", f"{C}/999", None),
    ]:
        assert client.request(method, path, json=body).status_code == 404, path
    for path, body in [
        (f"{C}/{cid}/send", {"scheduled_at": "tomorrow"}),
        (f"{C}/{cid}/send", {"scheduled_at": 5}),
        (f"{C}/{cid}/test", {"emails": []}),
        (f"{C}/{cid}/test", {"emails": ["not-an-address"]}),
        (f"{C}/{cid}/test", {"emails": ["a@example.com"] * 51}),
        (f"{C}/{cid}/test", {}),
    ]:
        response = client.post(path, json=body)
        assert response.status_code == 422, (path, body, response.text)
    assert client.get(f"{C}/0").status_code == 422
    assert client.get(f"{C}/abc").status_code == 422
    assert client.get(C, params={"cursor": "junk"}).status_code == 400
    assert client.post(f"{C}/{cid}/send", content=b"{").status_code in (400, 422)
    # The list went away before sending: 422 naming it, and the campaign stays a draft.
    assert client.delete(f"/api/v1/lists/{members}").status_code == 204
    refused = client.post(f"{C}/{cid}/send")
    assert refused.status_code == 422
    assert refused.json()["error"]["details"]["list_ids"] == [members]
    assert client.get(f"{C}/{cid}").json()["status"] == "draft"


def test_an_email_in_flight_at_pause_or_cancel_is_held_or_skipped_when_it_comes_back(
    client: Any, services: Services
) -> None:
    members = make_list(client, "Members")
    for n in range(3):
        make_contact(client, f"f{n}@example.com", [members])
    cid = make_campaign(client, [members])["id"]
    send(client, cid)
    loop = loop_at(services)
    drain(loop)
    at = datetime.now(UTC).timestamp()
    with services.db.write() as conn:
        (flying,) = EmailStore(conn).claim_due("w", at + 1, at + 60, 1)
    assert client.post(f"{C}/{cid}/pause").status_code == 200
    rows = {r.id: r for r in campaign_emails(services, cid)}
    assert rows[flying.email.id].next_attempt_at == at + 60  # its attempt goes on
    assert [r.next_attempt_at for i, r in rows.items() if i != flying.email.id] == [None, None]

    def defer(email: Any) -> None:
        update_ = EmailUpdate(email.id, "deferred", "451 later", 1, at)
        with services.db.write() as conn:
            EmailLedger(conn, services.outbox.writer(conn), datetime.now(UTC)).record_attempts(
                "w", [Attempt(email, update_)]
            )

    defer(flying.email)  # the attempt ended deferred, due again: it escaped the pause
    assert _claimable(services, cid) == {flying.email.id}
    drain(loop_at(services))
    assert _claimable(services, cid) == set()

    assert client.post(f"{C}/{cid}/resume").status_code == 200
    with services.db.write() as conn:
        (flying,) = EmailStore(conn).claim_due("w", at + 3, at + 60, 1)
    cancelled = client.post(f"{C}/{cid}/cancel").json()
    assert cancelled["stats"]["skipped"] == 2
    defer(flying.email)
    drain(loop_at(services))
    rows = {r.id: r for r in campaign_emails(services, cid)}
    assert {r.status for r in rows.values()} == {"skipped"}
    assert client.get(f"{C}/{cid}").json()["status"] == "cancelled"


def test_content_that_does_not_compile_is_a_422_naming_field_and_line(client: Any) -> None:
    members = make_list(client, "Members")
    response = client.post(
        C,
        json={
            "name": "x",
            "list_ids": [members],
            "subject": "Fine",
            "html": "<p>line one</p>\n<p>{% for x in %}</p>",
        },
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "template_invalid"
    assert error["details"]["field"] == "html"
    assert error["details"]["line"] == 2
