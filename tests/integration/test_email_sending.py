"""Sending email end to end: POST /api/v1/emails, a real email worker, a real SMTP server.

Each test queues through the API, runs the worker (its own thread and loop, as in ``hookhub
serve``) against the aiosmtpd fixture, and checks what a user sees: the messages the server
received, the email's status and timeline, the contact's block, the events on the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from email import message_from_bytes, policy
from typing import Any

import pytest

from tests.support.delivery import api_client, create_contact, tuned_services
from tests.support.email import email_worker, raw_of, wait_for_status
from tests.support.smtp import SmtpServer, running_smtp_server

SENDER = "Shop <shop@example.com>"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with running_smtp_server() as server:
        yield server


def _services(db_url: str, smtp: SmtpServer | None, **overrides: Any) -> Any:
    options: dict[str, Any] = {
        "email_from": SENDER,
        "email_retry_schedule": "0.3,0.3",
        "public_url": "https://hooks.example.com",
        "poll_interval": 0.1,
    }
    if smtp is not None:
        options["smtp_url"] = smtp.url()
    options.update(overrides)
    return tuned_services(db_url, **options)


def _send(client: Any, body: dict[str, Any], **headers: str) -> list[dict[str, Any]]:
    answer = client.post("/api/v1/emails", json=body, headers=headers)
    assert answer.status_code == 202, answer.text
    data: list[dict[str, Any]] = answer.json()["data"]
    return data


def _inline(*to: str, **extra: Any) -> dict[str, Any]:
    return {
        "to": [{"email": address} for address in to],
        "subject": "Order {{ params.order }} for {{ contact.email }}",
        "html": '<p>Hi {{ contact.FIRSTNAME }}, <a href="https://shop.example.com/o/1">view</a></p>',
        "params": {"order": "A-1"},
        **extra,
    }


def _payloads(client: Any, event_type: str) -> list[dict[str, Any]]:
    answer = client.get("/api/v1/messages", params={"event_type": event_type, "limit": 1000})
    return [m["payload"]["data"] for m in answer.json()["data"]]


def test_transactional_email_arrives_personalised_with_tracking(
    db_url: str, smtp: SmtpServer
) -> None:
    with _services(db_url, smtp) as services, api_client(services) as client:
        create_contact(services, "ada@example.com", FIRSTNAME="Ada")
        queued = _send(client, _inline("ada@example.com", "bob@example.com", tags=["order"]))
        assert [q["status"] for q in queued] == ["queued", "queued"]
        with email_worker(services):
            sent = wait_for_status(services, [q["id"] for q in queued], {"sent"})
        mails = {m.recipients[0]: m for m in smtp.wait_for(2)}
        ada = message_from_bytes(mails["ada@example.com"].data, policy=policy.default)
        assert ada["Subject"] == "Order A-1 for ada@example.com"
        assert ada["From"] == SENDER
        assert ada["Message-ID"] == f"<{sent[0].message_id}>"
        assert "List-Unsubscribe" not in ada  # transactional
        html = ada.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert "Hi Ada," in html
        assert "https://hooks.example.com/t/c/" in html  # the link is tracked
        assert "https://hooks.example.com/t/o/" in html  # the open pixel
        assert "shop.example.com/o/1" not in html
        assert mails["ada@example.com"].sender == "shop@example.com"
        # the exact bytes are kept and served as message/rfc822
        raw = client.get(f"/api/v1/emails/{queued[0]['id']}/raw")
        assert raw.status_code == 200
        assert raw.headers["content-type"] == "message/rfc822"
        assert raw.content == mails["ada@example.com"].data
        detail = client.get(f"/api/v1/emails/{queued[0]['id']}").json()
        assert detail["status"] == "sent"
        assert detail["subject"] == "Order A-1 for ada@example.com"
        assert [e["type"] for e in detail["events"]] == ["queued", "sent"]
        [event] = [p for p in _payloads(client, "email.sent") if p["email"] == "ada@example.com"]
        assert event["tags"] == ["order"]
        assert event["message_id"] == sent[0].message_id
        listed = client.get("/api/v1/emails", params={"tag": "order", "status": "sent"}).json()
        assert [e["id"] for e in listed["data"]] == [queued[1]["id"], queued[0]["id"]]


def test_starttls_and_auth_end_to_end(db_url: str) -> None:
    with running_smtp_server(tls="starttls", auth=("mailer", "s3cret-pass")) as smtp:
        url = smtp.url(user="mailer", password="s3cret-pass", verify="off")
        with (
            _services(db_url, None, smtp_url=url) as services,
            api_client(services) as client,
        ):
            queued = _send(client, _inline("ada@example.com"))
            with email_worker(services):
                wait_for_status(services, [queued[0]["id"]], {"sent"})
        [mail] = smtp.wait_for(1)
        assert mail.tls
        assert mail.login == "mailer"


@pytest.mark.parametrize("code", [421, 451])
def test_a_temporary_failure_defers_then_sends_the_same_bytes(
    db_url: str, smtp: SmtpServer, code: int
) -> None:
    smtp.fail("rcpt" if code == 451 else "mail", code)
    with _services(db_url, smtp) as services, api_client(services) as client:
        [queued] = _send(client, _inline("ada@example.com"))
        with email_worker(services):
            wait_for_status(services, [queued["id"]], {"deferred", "sent"})
            first_raw = raw_of(services, queued["id"])
            [email] = wait_for_status(services, [queued["id"]], {"sent"})
        [mail] = smtp.wait_for(1)
        assert first_raw is not None
        assert mail.data == first_raw
        assert email.attempt_count == 2
        assert [e.type for e in email.events] == ["queued", "deferred", "sent"]
        assert email.events[1].detail is not None
        assert email.events[1].detail["code"] == code
        assert _payloads(client, "email.deferred")[0]["attempts"] == 1


def test_a_connection_dropped_mid_data_defers_then_sends(db_url: str, smtp: SmtpServer) -> None:
    smtp.drop_data(1)
    with _services(db_url, smtp) as services, api_client(services) as client:
        [queued] = _send(client, _inline("ada@example.com"))
        with email_worker(services):
            [email] = wait_for_status(services, [queued["id"]], {"sent"})
        [mail] = smtp.wait_for(1)
        assert [e.type for e in email.events] == ["queued", "deferred", "sent"]
        assert mail.data == raw_of(services, queued["id"])
        assert f"Message-ID: <{email.message_id}>".encode() in mail.data


def test_retries_used_up_fail_as_a_soft_bounce(db_url: str, smtp: SmtpServer) -> None:
    smtp.fail("rcpt", 451, times=3)
    with _services(db_url, smtp) as services, api_client(services) as client:
        [queued] = _send(client, _inline("ada@example.com"))
        with email_worker(services):
            [email] = wait_for_status(services, [queued["id"]], {"failed"})
        assert email.status_reason is not None
        assert "soft bounce" in email.status_reason
        assert [p["email_id"] for p in _payloads(client, "email.failed")] == [queued["id"]]
        assert smtp.messages == []


def test_a_hard_bounce_blocks_the_contact_and_tells_subscribers(
    db_url: str, smtp: SmtpServer
) -> None:
    smtp.fail("rcpt", 550)
    with _services(db_url, smtp) as services, api_client(services) as client:
        create_contact(services, "ada@example.com")
        [queued] = _send(client, _inline("ada@example.com"))
        with email_worker(services):
            [email] = wait_for_status(services, [queued["id"]], {"bounced"})
        assert email.status_reason is not None
        assert email.status_reason.startswith("550")
        contact = client.get("/api/v1/contacts/ada@example.com").json()
        assert contact["email_blocked"]["reason"] == "hard_bounce"
        [bounced] = _payloads(client, "email.bounced")
        assert bounced["bounce_type"] == "hard"
        assert bounced["email_id"] == queued["id"]
        # the next email to a blocked contact is skipped, with the reason
        [again] = _send(client, _inline("ada@example.com"))
        assert again["status"] == "skipped"
        assert again["status_reason"] == "blocked: hard_bounce"
        # clearing the block lets email through again
        answer = client.patch("/api/v1/contacts/ada@example.com", json={"email_blocked": None})
        assert answer.status_code == 200, answer.text
        assert answer.json()["email_blocked"] is None
        [third] = _send(client, _inline("ada@example.com"))
        assert third["status"] == "queued"


def test_a_template_that_fails_for_one_recipient_fails_only_that_email(
    db_url: str, smtp: SmtpServer
) -> None:
    with _services(db_url, smtp) as services, api_client(services) as client:
        body = _inline("ada@example.com", "bob@example.com")
        body["html"] = "<p>{{ 10 // params.n[contact.email] }}</p>"
        body["params"] = {"n": {"ada@example.com": 2, "bob@example.com": 0}}
        queued = _send(client, body)
        with email_worker(services):
            ada, bob = wait_for_status(services, [q["id"] for q in queued], {"sent", "failed"})
        assert ada.status == "sent"
        assert bob.status == "failed"
        assert bob.status_reason
        assert "html" in bob.status_reason
        assert [m.recipients for m in smtp.wait_for(1)] == [["ada@example.com"]]


def test_capture_mode_stores_the_message_and_sends_nothing(db_url: str) -> None:
    with _services(db_url, None) as services, api_client(services) as client:
        assert client.get(f"/api/v1/emails/{1}/raw").status_code == 404
        [queued] = _send(client, _inline("ada@example.com"))
        pending = client.get(f"/api/v1/emails/{queued['id']}/raw")
        assert pending.status_code == 404
        assert "not been rendered" in pending.json()["error"]["message"]
        with email_worker(services) as worker:
            assert "capture" in worker.transport.describe()
            wait_for_status(services, [queued["id"]], {"sent"})
        raw = client.get(f"/api/v1/emails/{queued['id']}/raw")
        assert raw.status_code == 200
        assert b"Subject: Order A-1" in raw.content


def test_the_same_idempotency_key_answers_the_first_answer_and_sends_once(
    db_url: str, smtp: SmtpServer
) -> None:
    with _services(db_url, smtp) as services, api_client(services) as client:
        body = _inline("ada@example.com")
        first = client.post("/api/v1/emails", json=body, headers={"Idempotency-Key": "k-1"})
        again = client.post("/api/v1/emails", json=body, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == again.status_code == 202
        assert again.json() == first.json()
        assert again.headers.get("idempotent-replayed") == "true"
        other = client.post(
            "/api/v1/emails", json=_inline("bob@example.com"), headers={"Idempotency-Key": "k-1"}
        )
        assert other.status_code == 409
        assert "different body" in other.json()["error"]["message"]
        with email_worker(services):
            wait_for_status(services, [first.json()["data"][0]["id"]], {"sent"})
        assert len(client.get("/api/v1/emails").json()["data"]) == 1
        assert len(smtp.wait_for(1)) == 1


def test_a_thousand_recipients_in_one_call(db_url: str) -> None:
    with _services(db_url, None) as services, api_client(services) as client:
        body = _inline(*(f"r{n}@example.com" for n in range(1000)))
        queued = _send(client, body)
        assert len(queued) == 1000
        assert {q["status"] for q in queued} == {"queued"}
        assert len({q["message_id"] for q in queued}) == 1000
        too_many = _inline(*(f"r{n}@example.com" for n in range(1001)))
        assert client.post("/api/v1/emails", json=too_many).status_code == 422
        with email_worker(services):
            wait_for_status(services, [q["id"] for q in queued], {"sent"}, timeout=120)


def test_bad_requests_are_422s_naming_what_is_wrong(db_url: str) -> None:
    with _services(db_url, None) as services, api_client(services) as client:
        bad = client.post("/api/v1/emails", json=_inline("ada@example.com", "not an address"))
        assert bad.status_code == 422
        assert bad.json()["error"]["details"]["field"] == "to[1].email"
        unknown = client.post(
            "/api/v1/emails", json={"to": [{"email": "ada@example.com"}], "template_id": 999}
        )
        assert unknown.status_code == 422
        assert "999" in unknown.json()["error"]["message"]
        broken = client.post("/api/v1/emails", json=_inline("a@example.com", html="{% if %}"))
        assert broken.status_code == 422
        for headers in ({"X-Bad": "a\r\nBcc: evil@example.com"}, {"From": "x@example.com"}):
            answer = client.post("/api/v1/emails", json=_inline("a@example.com", headers=headers))
            assert answer.status_code == 422, headers
        assert client.get("/api/v1/emails").json()["data"] == []


def test_smtp_credentials_never_show(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with running_smtp_server(auth=("mailer", "right-password"), auth_require_tls=False) as smtp:
        url = smtp.url(user="mailer", password="wrong-Pa55word")
        with _services(db_url, None, smtp_url=url) as services, api_client(services) as client:
            [queued] = _send(client, _inline("ada@example.com"))
            with email_worker(services) as worker:
                assert "wrong-Pa55word" not in worker.transport.describe()
                wait_for_status(services, [queued["id"]], {"deferred"})
            detail = client.get(f"/api/v1/emails/{queued['id']}").text
            ready = client.get("/readyz").text
    assert "wrong-Pa55word" not in caplog.text
    assert "wrong-Pa55word" not in detail
    assert "wrong-Pa55word" not in ready


def test_bounces_reported_by_api(db_url: str) -> None:
    with _services(db_url, None) as services, api_client(services) as client:
        create_contact(services, "ada@example.com")
        create_contact(services, "bob@example.com")
        [queued] = _send(client, _inline("ada@example.com"))
        with email_worker(services):
            [email] = wait_for_status(services, [queued["id"]], {"sent"})
        answer = client.post(
            "/api/v1/bounces", json={"message_id": email.message_id, "type": "hard"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"type": "hard", "email_id": queued["id"], "contact_blocked": True}
        assert client.get(f"/api/v1/emails/{queued['id']}").json()["status"] == "bounced"
        # a complaint for an address never emailed still blocks its contact
        answer = client.post(
            "/api/v1/bounces", json={"email": "bob@example.com", "type": "complaint"}
        )
        assert answer.json() == {"type": "complaint", "email_id": None, "contact_blocked": True}
        bob = client.get("/api/v1/contacts/bob@example.com").json()
        assert bob["email_blocked"]["reason"] == "complaint"
        unknown = client.post("/api/v1/bounces", json={"message_id": "nope@x", "type": "soft"})
        assert unknown.status_code == 404
        neither = client.post("/api/v1/bounces", json={"type": "soft"})
        assert neither.status_code == 422
