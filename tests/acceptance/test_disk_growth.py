"""Anyone who has a receive URL can send to it: unsigned requests must not fill the disk.

2,000 unsigned requests of 1 MiB each (the body limit) to a signed Stripe webhook of a real
``hookhub serve`` on SQLite: each is refused 401 and logged with a prefix of its body only, so
the database file and its WAL together grow by less than 20 MB (not the 2 GB sent).
"""

from __future__ import annotations

import threading
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import API_KEY
from tests.support import processes
from tests.support.wire import Wire

pytestmark = pytest.mark.slow

REQUESTS = 2_000
SENDERS = 4
MIB = 1024 * 1024


def size_on_disk(database: Path) -> int:
    wal = database.with_name(database.name + "-wal")
    return database.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def send_unsigned(port: int, path: str, count: int, statuses: list[int]) -> None:
    body = b'{"id": "evt_unsigned", "pad": "' + b"x" * (MIB - 33) + b'"}'
    assert len(body) == MIB
    head = (
        b"POST %s HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"stripe-signature: t=1,v1=00\r\ncontent-length: %d\r\n\r\n" % (path.encode(), len(body))
    )
    wire = Wire(port)
    try:
        for _ in range(count):
            wire.send(head + body)
            statuses.append(wire.answer().status)
    finally:
        wire.close()


def test_unsigned_megabytes_do_not_fill_the_disk(tmp_path: Path) -> None:
    database = tmp_path / "hookhub.db"
    env = {"HOOKHUB_API_KEY": API_KEY}
    with processes.serving(f"sqlite:///{database}", tmp_path, **env) as base:
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {API_KEY}"})
        created = api.post(
            "/api/v1/inbound-webhooks",
            json={"name": "shop", "source": "stripe", "secret": "whsec_disk_growth"},
        )
        assert created.status_code == 201, created.text
        hook = created.json()
        path = "/in/" + hook["url"].split("/in/", 1)[1]
        port = int(base.rsplit(":", 1)[1])
        before = size_on_disk(database)

        statuses: list[int] = []
        senders = [
            threading.Thread(target=send_unsigned, args=(port, path, REQUESTS // SENDERS, statuses))
            for _ in range(SENDERS)
        ]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(600)

        assert len(statuses) == REQUESTS
        assert set(statuses) == {401}
        logged = api.get(f"/api/v1/inbound-webhooks/{hook['id']}/requests", params={"limit": 5})
        entries = logged.json()["data"]
        assert all(e["status"] == "rejected" and e["body_size"] <= 4096 for e in entries)
        grown = size_on_disk(database) - before
        api.close()
    print(f"database and WAL grew by {grown / MIB:.1f} MiB for {REQUESTS} x 1 MiB unsigned")
    assert grown < 20 * 1000 * 1000, f"grew by {grown} bytes"
