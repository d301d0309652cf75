"""Providers' event webhooks update the emails Hookhub sent: what a user of Mailgun, Postmark or
SendGrid sees once a signed event has been received and processed by the source's presets.

Emails are queued through the email store as any cause queues them, with the Message-ID the
provider's fixture names (the Message-ID the email went out with), then marked sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from hookhub.crm.operations import CrmTx
from hookhub.records.email import Email
from hookhub.services import Services
from hookhub.store.email_reads import EmailReads
from hookhub.store.email_rows import NewEmail
from hookhub.store.emails import EmailStore
from tests.support.inbound import (
    Hook,
    create_hook,
    fixture,
    messages_of,
    raw_client,
    requests_of,
    sendgrid_key_pair,
)

NOW = datetime(2026, 2, 3, 19, 0, tzinfo=UTC)
MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
SENDGRID_PRIVATE, SENDGRID_PUBLIC = sendgrid_key_pair()
SECRETS = {"mailgun": MAILGUN_KEY, "postmark": "hooks:s3cret-password", "sendgrid": SENDGRID_PUBLIC}
MAILGUN_ADA = "20260203192638.9f3c2a71b0e4d5a6@mg.example.com"
MAILGUN_NOBODY = "20260203194655.1b2c3d4e5f607182@mg.example.com"


@pytest.fixture
def sender(client: Any) -> Iterator[Any]:
    with raw_client(client) as raw:
        yield raw


def queue_sent(
    services: Services, address: str, message_id: str | None = None, *, contact: bool = True
) -> int:
    """An email to ``address`` as a cause queues it, then sent: its id."""
    with services.db.write() as conn:
        crm = CrmTx(conn, services.outbox.writer(conn), NOW)
        contact_id = None
        if contact:
            found = crm.contacts.get_by_email(address)
            contact_id = found.id if found else crm.create_contact(email=address)[0].id
        store = EmailStore(conn)
        [email_id] = store.insert_many(
            [
                NewEmail(
                    message_id=message_id or f"{len(address)}.{address}@mail.example.com",
                    kind="transactional",
                    to_email=address,
                    contact_id=contact_id,
                    sender={"email": "shop@example.com", "name": "Example Shop"},
                    created_at=NOW,
                    content={"subject": "Your order", "html": "<p>Thanks!</p>"},
                    tags=["order-confirmation"],
                )
            ]
        )
        store.update_status(email_id, "sent", None, NOW.timestamp())
    return email_id


def email_of(services: Services, email_id: int) -> Email:
    with services.db.read() as conn:
        email = EmailReads(conn).get(email_id)
    assert email is not None
    return email


def deliver(
    client: Any, sender: Any, services: Services, hook: Hook, body: bytes
) -> dict[str, Any]:
    """Send ``body`` signed the provider's way, process the backlog: the request as logged."""
    options = {"private_key": SENDGRID_PRIVATE} if hook.source == "sendgrid" else {}
    signed, headers = hook.signed(body, **options)
    response = sender.post(hook.path, content=signed, headers=headers)
    assert response.status_code == 202, response.text
    assert services.inbound.process_backlog() == 1
    request_id = response.json()["request_id"]
    logged = client.get(f"/api/v1/inbound-webhooks/{hook.id}/requests/{request_id}").json()
    assert logged["status"] == "processed", logged
    return dict(logged)


def contact_of(client: Any, address: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/contacts/{address}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_mailgun_delivered_reaches_the_email_by_its_message_id(
    client: Any, sender: Any, services: Services
) -> None:
    email_id = queue_sent(services, "ada@example.com", MAILGUN_ADA)
    hook = create_hook(client, "mailgun", secret=MAILGUN_KEY)

    logged = deliver(client, sender, services, hook, fixture("mailgun_delivered"))

    assert email_of(services, email_id).status == "delivered"
    assert [(e.type, e.detail) for e in email_of(services, email_id).events] == [
        ("delivered", {"source": "provider"})
    ]
    [message] = messages_of(client, "email.delivered")
    assert message["data"]["email_id"] == email_id
    assert message["data"]["message_id"] == MAILGUN_ADA
    assert logged["actions"] == [
        {
            "rule": "delivered",
            "email_event": "delivered",
            "email_id": email_id,
            "report": "delivered",
            "found_by": "message_id",
        }
    ]


def test_mailgun_permanent_failure_is_a_hard_bounce_that_blocks_the_contact(
    client: Any, sender: Any, services: Services
) -> None:
    email_id = queue_sent(services, "nobody@example.com", MAILGUN_NOBODY)
    hook = create_hook(client, "mailgun", secret=MAILGUN_KEY)

    deliver(client, sender, services, hook, fixture("mailgun_failed_permanent"))

    email = email_of(services, email_id)
    assert email.status == "bounced"
    assert email.status_reason is not None
    assert email.status_reason.startswith("5.1.1 The email account that you tried to reach")
    blocked = contact_of(client, "nobody@example.com")["email_blocked"]
    assert blocked["reason"] == "hard_bounce"
    [bounce] = messages_of(client, "email.bounced")
    assert bounce["data"]["bounce_type"] == "hard"
    assert bounce["data"]["email_id"] == email_id

    # A temporary failure of another email is a soft bounce: no status change, nobody blocked.
    other = queue_sent(services, "grace@example.com", "temporary.1@mg.example.com")
    payload = json.loads(fixture("mailgun_failed_permanent"))
    payload["event-data"].update(id="temporary-1", severity="temporary", recipient="x@y.z")
    payload["event-data"]["message"]["headers"]["message-id"] = "temporary.1@mg.example.com"
    deliver(client, sender, services, hook, json.dumps(payload).encode())
    assert email_of(services, other).status == "sent"
    assert contact_of(client, "grace@example.com")["email_blocked"] is None
    soft = [m for m in messages_of(client, "email.bounced") if m["data"]["email_id"] == other]
    assert [m["data"]["bounce_type"] for m in soft] == ["soft"]


def test_mailgun_open_is_recorded_once_as_first(
    client: Any, sender: Any, services: Services
) -> None:
    email_id = queue_sent(services, "ada@example.com", MAILGUN_ADA)
    hook = create_hook(client, "mailgun", secret=MAILGUN_KEY)
    deliver(client, sender, services, hook, fixture("mailgun_opened"))
    again = json.loads(fixture("mailgun_opened"))
    again["event-data"]["id"] = "a-second-open"
    deliver(client, sender, services, hook, json.dumps(again).encode())

    email = email_of(services, email_id)
    assert email.status == "sent"  # opens change no status
    assert email.opened_at is not None
    assert [e.type for e in email.events] == ["opened", "opened"]
    opens = messages_of(client, "email.opened")
    assert sorted(m["data"]["first"] for m in opens) == [False, True]


def test_postmark_events_find_the_email_by_recipient(
    client: Any, sender: Any, services: Services
) -> None:
    """Postmark's MessageID is its own, not the email's Message-ID: the newest email to the
    recipient is the one meant."""
    older = queue_sent(services, "ada@example.com", "older@mail.example.com")
    newest = queue_sent(services, "ada@example.com", "newest@mail.example.com")
    bounced = queue_sent(services, "nobody@example.com")
    hook = create_hook(client, "postmark", secret=SECRETS["postmark"])

    delivered = deliver(client, sender, services, hook, fixture("postmark_delivery"))
    deliver(client, sender, services, hook, fixture("postmark_open"))
    deliver(client, sender, services, hook, fixture("postmark_bounce"))

    assert delivered["actions"][0]["found_by"] == "recipient"
    assert email_of(services, older).status == "sent"
    assert email_of(services, newest).status == "delivered"
    assert [e.type for e in email_of(services, newest).events] == ["delivered", "opened"]
    assert email_of(services, bounced).status == "bounced"
    assert contact_of(client, "nobody@example.com")["email_blocked"]["reason"] == "hard_bounce"
    [bounce] = messages_of(client, "email.bounced")
    assert bounce["data"]["reason"].startswith("smtp;550 5.1.1")


@pytest.mark.parametrize(
    ("bounce_type", "expected"),
    [("SoftBounce", "soft"), ("Transient", "soft"), ("BadEmailAddress", "hard")],
)
def test_postmark_bounce_types_map_to_hard_or_soft(
    client: Any, sender: Any, services: Services, bounce_type: str, expected: str
) -> None:
    email_id = queue_sent(services, "nobody@example.com")
    hook = create_hook(client, "postmark", secret=SECRETS["postmark"])
    payload = {**json.loads(fixture("postmark_bounce")), "Type": bounce_type}
    deliver(client, sender, services, hook, json.dumps(payload).encode())
    [bounce] = messages_of(client, "email.bounced")
    assert bounce["data"]["bounce_type"] == expected
    assert email_of(services, email_id).status == ("bounced" if expected == "hard" else "sent")


def test_postmark_spam_complaint_blocks_the_contact_and_emits_complained(
    client: Any, sender: Any, services: Services
) -> None:
    email_id = queue_sent(services, "nobody@example.com")
    hook = create_hook(client, "postmark", secret=SECRETS["postmark"])
    complaint = {
        **json.loads(fixture("postmark_bounce")),
        "RecordType": "SpamComplaint",
        "Type": "SpamComplaint",
        "TypeCode": 512,
    }
    deliver(client, sender, services, hook, json.dumps(complaint).encode())
    [message] = messages_of(client, "email.complained")
    assert message["data"]["email_id"] == email_id
    assert contact_of(client, "nobody@example.com")["email_blocked"]["reason"] == "complaint"
    assert email_of(services, email_id).status == "sent"


def test_sendgrid_batch_applies_every_event_to_its_email(
    client: Any, sender: Any, services: Services
) -> None:
    ada = queue_sent(
        services, "ada@example.com", "20260203192638.9f3c2a71b0e4d5a6@mail.example.com"
    )
    nobody = queue_sent(services, "nobody@example.com")
    grace = queue_sent(services, "grace@example.com")
    old = queue_sent(services, "old@example.com")
    linus = queue_sent(services, "linus@example.com")
    barbara = queue_sent(services, "barbara@example.com")
    hook = create_hook(client, "sendgrid", secret=SENDGRID_PUBLIC)

    logged = deliver(client, sender, services, hook, fixture("sendgrid_events"))

    # In the batch's order: SendGrid's own progress noted, then each report on its email.
    actions = logged["actions"]
    assert [a["item"] for a in actions] == list(range(11))
    assert [a["email_event"] for a in actions] == [
        None,
        None,
        "delivered",
        "opened",
        "clicked",
        "bounced",
        "bounced",
        "bounced",
        "complained",
        "unsubscribed",
        "unsubscribed",
    ]
    assert actions[2]["found_by"] == "message_id"
    assert actions[3]["found_by"] == "recipient"  # opens carry no smtp-id

    assert email_of(services, ada).status == "delivered"
    assert [e.type for e in email_of(services, ada).events] == ["delivered", "opened", "clicked"]
    [click] = messages_of(client, "email.clicked")
    assert click["data"]["url"] == "https://shop.example.com/orders/1042"
    assert email_of(services, nobody).status == "bounced"
    assert email_of(services, old).status == "bounced"  # dropped: a known bad address
    assert email_of(services, grace).status == "sent"  # blocked by a list: a soft bounce
    bounces = {m["data"]["email_id"]: m["data"] for m in messages_of(client, "email.bounced")}
    assert {k: v["bounce_type"] for k, v in bounces.items()} == {
        nobody: "hard",
        grace: "soft",
        old: "hard",
    }
    assert bounces[old]["reason"] == "dropped by SendGrid: Bounced Address"
    blocked = {
        address: (contact_of(client, address)["email_blocked"] or {}).get("reason")
        for address in ("nobody@example.com", "grace@example.com", "old@example.com")
    }
    assert blocked == {
        "nobody@example.com": "hard_bounce",
        "grace@example.com": None,
        "old@example.com": "hard_bounce",
    }
    [complaint] = messages_of(client, "email.complained")
    assert complaint["data"]["email_id"] == linus
    assert contact_of(client, "linus@example.com")["email_blocked"]["reason"] == "complaint"
    assert contact_of(client, "barbara@example.com")["unsubscribed"] is True
    [unsubscribed] = messages_of(client, "contact.unsubscribed")
    assert unsubscribed["data"]["email_id"] == barbara
    assert unsubscribed["data"]["source"] == "provider"


def test_unknown_message_id_falls_back_to_the_recipients_latest_email(
    client: Any, sender: Any, services: Services
) -> None:
    queue_sent(services, "ada@example.com", "first@mail.example.com")
    latest = queue_sent(services, "ada@example.com", "second@mail.example.com")
    hook = create_hook(client, "mailgun", secret=MAILGUN_KEY)
    logged = deliver(client, sender, services, hook, fixture("mailgun_delivered"))
    assert logged["actions"][0]["found_by"] == "recipient"
    assert logged["actions"][0]["email_id"] == latest
    assert email_of(services, latest).status == "delivered"


def test_an_event_about_no_known_email_is_processed_with_a_note(
    client: Any, sender: Any, services: Services
) -> None:
    queue_sent(services, "someone.else@example.com")
    hook = create_hook(client, "mailgun", secret=MAILGUN_KEY)
    logged = deliver(client, sender, services, hook, fixture("mailgun_failed_permanent"))
    [action] = logged["actions"]
    assert action["email_event"] == "bounced"
    assert action["note"] == (
        f"no email found by Message-ID {MAILGUN_NOBODY!r} or recipient 'nobody@example.com': "
        "nothing recorded"
    )
    assert [m for m in messages_of(client) if m["type"] != "contact.created"] == []
    assert client.get("/api/v1/contacts/nobody@example.com").status_code == 404


def test_preview_shows_the_presets_reports_and_changes_nothing(
    client: Any, services: Services
) -> None:
    email_id = queue_sent(services, "nobody@example.com", MAILGUN_NOBODY)
    hook = create_hook(client, "mailgun", secret=MAILGUN_KEY)
    response = client.post(
        f"/api/v1/inbound-webhooks/{hook.id}/preview",
        json={"body": json.loads(fixture("mailgun_failed_permanent"))},
    )
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["event_type"] == "failed"
    [matched] = preview["matched"]
    assert matched["rule"] == "failed permanently: hard bounce"
    assert matched["email_event"]["type"] == "bounced"
    assert matched["email_event"]["bounce_type"] == "hard"
    assert matched["email_event"]["message_id"] == MAILGUN_NOBODY
    [action] = preview["actions"]
    assert action["contact_blocked"] is True
    assert [m["type"] for m in preview["messages"]] == ["email.bounced"]
    assert email_of(services, email_id).status == "sent"  # rolled back
    assert [m for m in messages_of(client) if m["type"] != "contact.created"] == []


@pytest.mark.parametrize(
    ("email_event", "problem"),
    [
        ({"message_id": "id"}, "needs a type"),
        ({"type": "'opened'"}, "needs a message_id or an email"),
        ({"type": "'opened'", "email": "email", "colour": "'red'"}, "unknown keys"),
        ({"type": "'opened'", "email": "email[?"}, "not a valid JMESPath"),
        ("opened", "must be an object"),
    ],
)
def test_email_event_rules_are_checked_when_saved(
    client: Any, email_event: Any, problem: str
) -> None:
    rules = [{"name": "r", "email_event": email_event}]
    response = client.post(
        "/api/v1/inbound-webhooks",
        json={"source": "generic", "options": {"auth": "none"}, "rules": rules},
    )
    assert response.status_code == 422, response.text
    assert problem in response.json()["error"]["message"]


def test_a_type_hookhub_does_not_know_fails_the_request_naming_the_expression(
    client: Any, sender: Any, services: Services
) -> None:
    queue_sent(services, "ada@example.com")
    rules = [{"name": "mine", "email_event": {"type": "kind", "email": "to"}}]
    hook = create_hook(client, "generic", rules=rules)
    response = sender.post(hook.path, json={"kind": "exploded", "to": "ada@example.com"})
    assert response.status_code == 202, response.text
    services.inbound.process_backlog()
    [failed] = requests_of(client, hook, status="failed")
    assert "email_event.type resolved to 'exploded'" in failed["error"]
    assert failed["error_expression"] == "kind"
