"""Campaigns sent by real processes to a real SMTP server on loopback: a worker killed with
SIGKILL in the middle of a 1,000-recipient campaign, and two workers sharing one campaign on
PostgreSQL. Every recipient gets the email; nobody gets it twice except the few in flight when
the worker died, and those get the same Message-ID."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import insert, select

from hookhub.services import Services
from hookhub.store.schema import contacts, list_members, lists
from hookhub.store.schema_email import emails
from tests.conftest import API_KEY
from tests.support import processes
from tests.support.smtp import SmtpServer, running_smtp_server

pytestmark = pytest.mark.slow

RECIPIENTS = 1000
BATCH = 20
"""Emails a worker claims per transaction: at most two batches are in flight at a kill."""


def prefill(services: Services, count: int) -> int:
    """``count`` contacts in one list; the list's id."""
    now = datetime.now(UTC)
    with services.db.write() as conn:
        list_id = int(
            conn.execute(
                insert(lists).values(name="Everyone", created_at=now).returning(lists.c.id)
            ).scalar_one()
        )
        rows = [
            {
                "email": f"r{n:04d}@example.com",
                "attributes": f'{{"FIRSTNAME":"R{n}"}}',
                "unsubscribed": False,
                "created_at": now,
                "updated_at": now,
            }
            for n in range(count)
        ]
        conn.execute(insert(contacts), rows)
        ids = conn.execute(select(contacts.c.id)).scalars().all()
        conn.execute(
            insert(list_members),
            [{"list_id": list_id, "contact_id": i, "added_at": now} for i in ids],
        )
    return list_id


@contextmanager
def running(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = processes.start(args, env, out)
        try:
            yield process
        finally:
            processes.stop(process)


def start_campaign(base: str, list_id: int) -> int:
    api = httpx.Client(base_url=base + "/api/v1", headers={"Authorization": f"Bearer {API_KEY}"})
    with api:
        created = api.post(
            "/campaigns",
            json={
                "name": "Everyone",
                "subject": "Hello {{ contact.FIRSTNAME }}",
                "html": "<p>{{ params.offer }} for {{ contact.email }}</p>",
                "params": {"offer": "20% off"},
                "list_ids": [list_id],
            },
        )
        assert created.status_code == 201, created.text
        campaign_id: int = created.json()["id"]
        started = api.post(f"/campaigns/{campaign_id}/send")
        assert started.status_code == 200, started.text
    return campaign_id


def wait_sent(base: str, campaign_id: int, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        answer = httpx.get(
            f"{base}/api/v1/campaigns/{campaign_id}",
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=10,
        )
        body = answer.json()
        if body["status"] == "sent":
            return body
        time.sleep(0.25)
    raise AssertionError(f"the campaign was not sent in {timeout} s: {body}")


def received(server: SmtpServer) -> tuple[Counter[str], dict[str, set[str]]]:
    """How many times each recipient got a message, and the Message-IDs each got."""
    counts: Counter[str] = Counter()
    message_ids: dict[str, set[str]] = {}
    for mail in list(server.messages):
        (recipient,) = mail.recipients
        counts[recipient] += 1
        header = message_from_bytes(mail.data)["Message-ID"]
        message_ids.setdefault(recipient, set()).add(str(header).strip("<> "))
    return counts, message_ids


def stored_message_ids(services: Services, campaign_id: int) -> dict[str, str]:
    with services.db.read() as conn:
        query = select(emails.c.to_email, emails.c.message_id).where(
            emails.c.campaign_id == campaign_id
        )
        return {row.to_email: row.message_id for row in conn.execute(query)}


def worker_env(db_url: str, server: SmtpServer, **extra: str) -> dict[str, str]:
    return processes.hookhub_env(
        db_url,
        HOOKHUB_API_KEY=API_KEY,
        HOOKHUB_SMTP_URL=server.url(),
        HOOKHUB_SMTP_CONNECTIONS="4",
        HOOKHUB_EMAIL_BATCH=str(BATCH),
        HOOKHUB_EMAIL_LEASE="3",
        HOOKHUB_POLL_INTERVAL="0.2",
        **extra,
    )


def test_a_worker_killed_mid_campaign_leaves_nobody_out_and_few_twice(
    services: Services, db_url: str, tmp_path: Path
) -> None:
    list_id = prefill(services, RECIPIENTS)
    with running_smtp_server(delay=0.003) as server, ExitStack() as stack:
        env = worker_env(db_url, server)
        port = processes.free_port()
        api = stack.enter_context(running(["api", "--port", str(port)], env, tmp_path / "api.log"))
        base = f"http://127.0.0.1:{port}"
        processes.wait_http(base + "/healthz", process=api)
        first_log = stack.enter_context((tmp_path / "worker-1.log").open("ab"))
        first = processes.start(["worker"], env, first_log)
        try:
            campaign_id = start_campaign(base, list_id)
            deadline = time.monotonic() + 120
            while len(server.messages) < RECIPIENTS // 3:
                assert time.monotonic() < deadline, "the first worker sent too little"
                assert first.poll() is None, (tmp_path / "worker-1.log").read_text()
                time.sleep(0.02)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        finally:
            processes.stop(first)
        at_kill = len(server.messages)
        assert at_kill < RECIPIENTS, "the kill came too late to prove anything"
        stack.enter_context(running(["worker"], env, tmp_path / "worker-2.log"))
        campaign = wait_sent(base, campaign_id)
        counts, message_ids = received(server)
    assert campaign["stats"]["recipients"] == RECIPIENTS
    assert campaign["stats"]["sent"] == RECIPIENTS
    assert set(counts) == {f"r{n:04d}@example.com" for n in range(RECIPIENTS)}
    twice = {address: n for address, n in counts.items() if n > 1}
    print(f"killed after {at_kill} messages; {len(twice)} recipients got it twice")
    assert max(counts.values()) <= 2, twice
    assert len(twice) <= 2 * BATCH, twice  # only what the dead worker had in flight
    stored = stored_message_ids(services, campaign_id)
    assert {address: {stored[address]} for address in counts} == message_ids


@pytest.mark.postgres
def test_two_workers_share_one_campaign_on_postgresql_without_duplicates(
    services: Services, db_url: str, tmp_path: Path
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("many workers share a queue on PostgreSQL")
    list_id = prefill(services, RECIPIENTS)
    with running_smtp_server(delay=0.002) as server, ExitStack() as stack:
        env = worker_env(db_url, server)
        port = processes.free_port()
        api = stack.enter_context(running(["api", "--port", str(port)], env, tmp_path / "api.log"))
        base = f"http://127.0.0.1:{port}"
        processes.wait_http(base + "/healthz", process=api)
        for n in (1, 2):
            stack.enter_context(running(["worker"], env, tmp_path / f"worker-{n}.log"))
        campaign_id = start_campaign(base, list_id)
        campaign = wait_sent(base, campaign_id)
        counts, message_ids = received(server)
        connections = server.connections
    assert campaign["stats"]["sent"] == RECIPIENTS
    assert set(counts) == {f"r{n:04d}@example.com" for n in range(RECIPIENTS)}
    assert set(counts.values()) == {1}, "no recipient got it twice"
    stored = stored_message_ids(services, campaign_id)
    assert {address: {stored[address]} for address in counts} == message_ids
    assert connections > 4, "both workers sent (each opens its own connections)"


def test_one_click_unsubscribe_from_a_campaign_email_names_the_campaign(
    services: Services, db_url: str, tmp_path: Path
) -> None:
    pytest.importorskip("hookhub.email.tracking_receiver", reason="tracking routes")
    list_id = prefill(services, 2)
    with running_smtp_server() as server:
        port = processes.free_port()
        base = f"http://127.0.0.1:{port}"
        env = worker_env(db_url, server, HOOKHUB_PUBLIC_URL=base)
        with running(["serve", "--port", str(port)], env, tmp_path / "serve.log") as serve:
            processes.wait_http(base + "/healthz", process=serve)
            campaign_id = start_campaign(base, list_id)
            server.wait_for(2)
            mail = next(m for m in server.messages if m.recipients == ["r0001@example.com"])
            header = str(message_from_bytes(mail.data)["List-Unsubscribe"])
            url = next(part.strip("<> ") for part in header.split(",") if "http" in part)
            assert url.startswith(base + "/t/u/"), header
            answer = httpx.post(
                url,
                content=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert answer.status_code < 300, answer.text
            api = {"Authorization": f"Bearer {API_KEY}"}
            deadline = time.monotonic() + 30
            found: list[dict[str, Any]] = []
            while not found and time.monotonic() < deadline:
                listed = httpx.get(
                    f"{base}/api/v1/messages",
                    params={"event_type": "contact.unsubscribed"},
                    headers=api,
                )
                found = [m["payload"]["data"] for m in listed.json()["data"]]
                time.sleep(0.2)
            stats = httpx.get(f"{base}/api/v1/campaigns/{campaign_id}", headers=api).json()
    (unsubscribed,) = found
    assert unsubscribed["email"] == "r0001@example.com"
    assert unsubscribed["campaign_id"] == campaign_id
    assert unsubscribed["email_id"] == stats_email_id(services, campaign_id, "r0001@example.com")
    assert stats["stats"]["unsubscribed"] == 1


def stats_email_id(services: Services, campaign_id: int, address: str) -> int:
    with services.db.read() as conn:
        query = select(emails.c.id).where(
            emails.c.campaign_id == campaign_id, emails.c.to_email == address
        )
        return int(conn.execute(query).scalar_one())
