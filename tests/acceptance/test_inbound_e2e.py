"""The README's five-minute walk-through, step by step, as a user would take it.

1. Start Hookhub (``hookhub serve``) with an API key of your choosing.
2. Subscribe a URL to contact events (here an aiohttp receiver on loopback).
3. Create an inbound Stripe webhook with the signing secret Stripe shows you.
4. Send a signed test request the way Stripe would (``hookhub inbound send``); again: duplicate.
5. Watch the contact appear, and the request in the log.
6. Watch the outbound webhooks arrive: ``contact.created`` and ``event.tracked``, each verified
   with the public ``standardwebhooks`` library.

Everything is real: the server and the CLI are processes, and the database is SQLite or
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx
from standardwebhooks.webhooks import Webhook

from hookhub.inbound.providers import get_provider
from tests.conftest import API_KEY
from tests.support import processes
from tests.support.receiver import running_receiver

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
STRIPE_EVENT = FIXTURES / "stripe_customer_created.json"
STRIPE_SECRET = "whsec_demo_secret"  # the signing secret Stripe shows for your endpoint
SERVE_ENV = {"HOOKHUB_API_KEY": API_KEY, "HOOKHUB_POLL_INTERVAL": "0.2"}


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """The first truthy answer of ``check``, polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        answer = await check()
        if answer or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.1)


async def hookhub_cli(*args: str) -> tuple[int, str]:
    """Run ``hookhub <args>`` as a user would in a shell; answers its exit code and output."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("HOOKHUB_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hookhub",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_five_minute_walk_through(db_url: str, tmp_path: Path) -> None:
    async with running_receiver() as listener:
        # 1. Start Hookhub with a key you choose.
        with processes.serving(db_url, tmp_path, **SERVE_ENV) as hookhub:
            auth = {"Authorization": f"Bearer {API_KEY}"}
            async with httpx.AsyncClient(base_url=hookhub, headers=auth, timeout=10) as api:
                # 2. Subscribe a URL to contact events.
                subscribed = await api.post(
                    "/api/v1/webhooks",
                    json={"url": listener.url, "events": ["contact.*", "event.tracked"]},
                )
                assert subscribed.status_code == 201, subscribed.text
                listener_secret = subscribed.json()["secret"]
                assert listener_secret.startswith("whsec_")

                # 3. Create an inbound Stripe webhook with Stripe's signing secret.
                created = await api.post(
                    "/api/v1/inbound-webhooks",
                    json={"name": "Stripe customers", "source": "stripe", "secret": STRIPE_SECRET},
                )
                assert created.status_code == 201, created.text
                inbound = created.json()
                assert inbound["url"].startswith(f"{hookhub}/in/")
                assert [rule["name"] for rule in inbound["rules"]] == [
                    "customer created",
                    "customer updated",
                    "checkout completed",
                ]

                # 4. Send a signed test request the way Stripe would; then the same again.
                send = (
                    "inbound",
                    "send",
                    "--source",
                    "stripe",
                    "--secret",
                    STRIPE_SECRET,
                    "--file",
                    str(STRIPE_EVENT),
                    inbound["url"],
                )
                code, output = await hookhub_cli(*send)
                assert code == 0, output
                assert output.startswith("202 "), output
                assert '"status":"queued"' in output.replace(" ", ""), output
                code, output = await hookhub_cli(*send)
                assert code == 0, output
                assert output.startswith("200 "), output
                assert '"status":"duplicate"' in output.replace(" ", ""), output

                # 5. Watch the contact appear (within a few seconds), and the request log.
                async def contact() -> dict[str, Any] | None:
                    found = await api.get("/api/v1/contacts/jenny.rosen@example.com")
                    return found.json() if found.status_code == 200 else None

                jenny = await eventually(contact)
                assert jenny, "the contact did not appear"
                assert jenny["attributes"] == {
                    "FIRSTNAME": "Jenny",
                    "LASTNAME": "Rosen",
                    "SMS": "+15555550123",
                    "STRIPE_CUSTOMER_ID": "cus_NhD8HD2bY8dP3V",
                }
                log = await api.get(f"/api/v1/inbound-webhooks/{inbound['id']}/requests")
                statuses = [request["status"] for request in log.json()["data"]]
                assert statuses == ["duplicate", "processed"]

                # 6. Watch the outbound webhooks arrive, each with a valid signature.
                await listener.wait_for(2, timeout=15)
                verifier = Webhook(listener_secret)
                payloads = [verifier.verify(r.body, r.headers) for r in listener.requests]
                by_type = {payload["type"]: payload["data"] for payload in payloads}
                assert sorted(by_type) == ["contact.created", "event.tracked"]
                assert by_type["contact.created"]["contact_id"] == jenny["id"]
                assert by_type["contact.created"]["email"] == "jenny.rosen@example.com"
                assert by_type["event.tracked"]["event_name"] == "stripe_customer_created"


async def test_three_copies_at_once_at_the_real_server_act_once(
    db_url: str, tmp_path: Path
) -> None:
    """Stripe retries a delivery it thinks was lost while the first is still in flight."""
    async with running_receiver() as endpoint:
        with processes.serving(db_url, tmp_path, **SERVE_ENV) as hookhub:
            auth = {"Authorization": f"Bearer {API_KEY}"}
            async with httpx.AsyncClient(base_url=hookhub, headers=auth, timeout=10) as api:
                created = await api.post(
                    "/api/v1/webhooks", json={"url": endpoint.url, "events": ["contact.created"]}
                )
                assert created.status_code == 201, created.text
                inbound = await api.post(
                    "/api/v1/inbound-webhooks", json={"source": "stripe", "secret": STRIPE_SECRET}
                )
                body = STRIPE_EVENT.read_bytes()
                headers = get_provider("stripe").sign(body, STRIPE_SECRET, time.time())
                url = inbound.json()["url"]
                answers = await asyncio.gather(
                    *(api.post(url, content=body, headers=headers) for _ in range(3))
                )
                assert sorted(a.status_code for a in answers) == [200, 200, 202]

                async def contacts() -> list[Any]:
                    listed = await api.get("/api/v1/contacts")
                    data: list[Any] = listed.json()["data"]
                    return data

                assert len(await eventually(contacts)) == 1
                await endpoint.wait_for(1, timeout=15)
                await asyncio.sleep(0.5)  # room for a second contact.created, were there one
                assert len(endpoint.requests) == 1
                assert len(await contacts()) == 1
