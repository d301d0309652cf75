"""SSRF through the whole path, with an empty HOOKHUB_ALLOW_PRIVATE_DESTINATIONS.

IP literals that name a forbidden address are refused when the webhook is created; names are
accepted then (they may resolve anywhere later) and judged at every attempt, on the address the
worker would really dial. Real listening sockets on loopback prove that nothing connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

from hookhub.services import Services
from tests.support.delivery import (
    ConnectionCounter,
    api_client,
    create_contact,
    eventually,
    running_worker,
    tuned_services,
)

API = "/api/v1"
STRICT = {
    "allow_private_destinations": "",
    "retry_schedule": "0.1,0.1",
    "retry_jitter": 0,
    "poll_interval": 0.1,
}


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@contextlib.asynccontextmanager
async def listeners() -> AsyncIterator[tuple[ConnectionCounter, ConnectionCounter | None, int]]:
    """Counting listeners on 127.0.0.1 and (when there is one) ::1, on the same port."""
    v4 = ConnectionCounter()
    async with v4.listening("127.0.0.1") as port:
        if not has_ipv6_loopback():
            yield v4, None, port
            return
        v6 = ConnectionCounter()
        v6.server = await asyncio.start_server(v6._accept, "::1", port)
        try:
            yield v4, v6, port
        finally:
            v6.server.close()
            await v6.server.wait_closed()


def test_private_ip_literals_are_refused_at_creation(db_url: str) -> None:
    with tuned_services(db_url, **STRICT) as services, api_client(services) as client:
        for url, reason in [
            ("http://127.0.0.1:8080/hook", "loopback"),
            ("http://[::1]:8080/hook", "loopback"),
            ("http://169.254.169.254/latest/meta-data/", "metadata"),
            ("http://10.0.0.1/hook", "private"),
            ("http://192.168.1.10/hook", "private"),
            ("http://100.64.0.1/hook", "CGNAT"),
            ("http://[::ffff:127.0.0.1]/hook", "loopback"),
            ("http://0.0.0.0:8080/hook", "unspecified"),
            ("http://[fd00:ec2::254]/", "metadata"),
        ]:
            response = client.post(f"{API}/webhooks", json={"url": url, "events": ["*"]})
            assert response.status_code == 422, (url, response.text)
            assert reason in response.json()["error"]["message"], url
        made = client.post(
            f"{API}/webhooks", json={"url": "https://hooks.example.com/in", "events": ["*"]}
        )
        assert made.status_code == 201
        moved = client.patch(
            f"{API}/webhooks/{made.json()['id']}", json={"url": "http://127.0.0.1:9/"}
        )
        assert moved.status_code == 422
        assert [w["url"] for w in client.get(f"{API}/webhooks").json()["data"]] == [
            "https://hooks.example.com/in"
        ]


async def test_every_attempt_to_a_private_destination_is_refused(db_url: str) -> None:
    async with listeners() as (v4, v6, port):
        with (
            tuned_services(db_url, **STRICT) as strict,
            tuned_services(db_url, allow_private_destinations="0.0.0.0/0,::/0") as lax,
            api_client(strict) as client,
        ):
            created = client.post(
                f"{API}/webhooks", json={"url": f"http://localhost:{port}/hook", "events": ["*"]}
            )
            assert created.status_code == 201, created.text  # a name is judged when dialled
            ids = [created.json()["id"]]
            # Literals are refused at creation with this policy; made under a lax one, they
            # show what the worker itself does with them.
            literals = [
                f"http://127.0.0.1:{port}/hook",
                f"http://[::1]:{port}/hook",
                "http://169.254.169.254/latest/meta-data/",
                "http://10.0.0.1/hook",
            ]
            ids += [lax.endpoints.create({"url": url, "events": ["*"]}).id for url in literals]
            create_contact(strict, "ssrf@example.com")
            async with running_worker(strict):
                await eventually(lambda: all_exhausted(strict, ids), timeout=20)
            for wid in ids:
                [delivery] = client.get(f"{API}/webhooks/{wid}/deliveries").json()["data"]
                assert delivery["attempt_count"] == 3
                assert [a["error"] for a in delivery["attempts"]] == ["destination_refused"] * 3
                assert all(a["status_code"] is None for a in delivery["attempts"])
        assert v4.connections == 0
        assert v6 is None or v6.connections == 0
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        await eventually(lambda: v4.connections == 1, timeout=5)  # the listener does count


def all_exhausted(services: Services, ids: list[int]) -> bool:
    return all(
        [d.status for d in services.endpoints.deliveries(wid, status=None, before_id=None, limit=5)]
        == ["exhausted"]
        for wid in ids
    )
