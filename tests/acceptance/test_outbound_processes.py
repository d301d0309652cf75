"""The outbound side as real processes: ``hookhub worker`` shutting down mid-delivery,
``hookhub listen`` checking signatures, and ``hookhub serve`` doing the README's walk-through.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
from sqlalchemy import func, select

from hookhub.core import signing
from hookhub.services import Services
from hookhub.store.deliveries import DeliveryStore
from hookhub.store.schema import delivery_attempts
from tests.conftest import API_KEY
from tests.support import processes
from tests.support.delivery import Script, create_contacts, verify
from tests.support.receiver import running_receiver

DELIVERY_TIMEOUT = 5.0
IN_FLIGHT = 4


def queue(services: Services) -> tuple[dict[str, int], int, int]:
    """Deliveries per status, how many are leased, and how many attempts are recorded."""
    with services.db.read() as conn:
        store = DeliveryStore(conn)
        attempts = conn.execute(select(func.count()).select_from(delivery_attempts)).scalar_one()
        return store.counts_by_status(), store.leased_count(), int(attempts)


async def test_worker_stops_on_sigterm_and_records_what_was_in_flight(
    services: Services, db_url: str, tmp_path: Path
) -> None:
    slow = Script(delay=2.0)
    async with running_receiver(slow) as receiver:
        services.endpoints.create({"url": receiver.url, "events": ["contact.created"]})
        create_contacts(services, 12)
        env = processes.hookhub_env(
            db_url,
            HOOKHUB_DELIVERY_TIMEOUT=str(DELIVERY_TIMEOUT),
            HOOKHUB_ENDPOINT_CONCURRENCY=str(IN_FLIGHT),
            HOOKHUB_POLL_INTERVAL="0.2",
        )
        with (tmp_path / "worker.log").open("wb") as log:
            worker = processes.start(["worker"], env, log)
            try:
                await receiver.wait_for(IN_FLIGHT, timeout=30)
                signalled = time.monotonic()
                worker.send_signal(signal.SIGTERM)
                code = await asyncio.to_thread(worker.wait, DELIVERY_TIMEOUT + 10)
                took = time.monotonic() - signalled
            finally:
                processes.stop(worker)
    assert code == 0, (tmp_path / "worker.log").read_text()
    assert took <= DELIVERY_TIMEOUT + 3, took
    counts, leased, attempts = queue(services)
    assert leased == 0, "a stopped worker leaves no lease behind"
    assert attempts == len(receiver.requests) == IN_FLIGHT, "every started attempt is recorded"
    assert counts == {"succeeded": IN_FLIGHT, "pending": 12 - IN_FLIGHT}


def test_listen_prints_webhooks_and_whether_they_verify(tmp_path: Path) -> None:
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    port = processes.free_port()
    output = tmp_path / "listen.log"
    with output.open("wb") as log:
        listener = subprocess.Popen(
            [sys.executable, "-m", "hookhub", "listen", "--port", str(port), "--secret", secret],
            env={**processes.hookhub_env("sqlite:///unused.db"), "COLUMNS": "200"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_text(output, "Listening on", listener)
            body = b'{"type":"contact.created","timestamp":"2026-01-15T09:30:00.000Z","data":{}}'
            good = signing.headers([secret], "msg_good_1", int(time.time()), body)
            answer = httpx.post(f"http://127.0.0.1:{port}/hooks", content=body, headers=good)
            assert answer.status_code == 200
            assert answer.json() == {"received": True, "signature": "valid"}
            wait_for_text(output, "msg_good_1", listener)
            other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="
            bad = signing.headers([other], "msg_bad_2", int(time.time()), body)
            answer = httpx.post(f"http://127.0.0.1:{port}/hooks", content=body, headers=bad)
            assert answer.json()["signature"] == "invalid"
            wait_for_text(output, "INVALID", listener)
        finally:
            # Generous: on a loaded machine (tests run in parallel) shutdown can take seconds.
            code = processes.stop(listener, sig=signal.SIGINT, wait=30)
    printed = output.read_text()
    good_part, bad_part = printed.split("msg_bad_2")
    assert "msg_good_1" in good_part
    assert re.search(r"signature\s+valid", good_part)
    assert "INVALID" not in good_part
    assert re.search(r"signature\s+INVALID", bad_part)
    assert "contact.created" in good_part
    assert code == 0
    assert "Stopped." in printed


def wait_for_text(path: Path, text: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never printed: {path.read_text(errors='replace')}")


async def test_serve_walk_through_delivers_a_signed_contact_created(
    db_url: str, tmp_path: Path
) -> None:
    async with running_receiver() as receiver:
        with processes.serving(db_url, tmp_path, HOOKHUB_API_KEY=API_KEY) as base:
            async with httpx.AsyncClient(
                base_url=base + "/api/v1", headers={"Authorization": f"Bearer {API_KEY}"}
            ) as api:
                created = await api.post(
                    "/webhooks",
                    json={"url": receiver.url, "events": ["contact.*", "event.tracked"]},
                )
                assert created.status_code == 201, created.text
                webhook: dict[str, Any] = created.json()
                contact = await api.post(
                    "/contacts", json={"email": "jenny@example.com", "attributes": {"PLAN": "pro"}}
                )
                assert contact.status_code == 201, contact.text
                await receiver.wait_for(1, timeout=20)
                deliveries = await api.get(f"/webhooks/{webhook['id']}/deliveries")
    [request] = receiver.requests
    payload = verify(webhook["secret"], request)
    assert payload["type"] == "contact.created"
    assert payload["data"]["email"] == "jenny@example.com"
    assert payload["data"]["contact_id"] == contact.json()["id"]
    assert request.headers["User-Agent"].startswith("hookhub/")
    [delivery] = deliveries.json()["data"]
    assert delivery["message_id"] == request.headers["webhook-id"]
