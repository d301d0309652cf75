"""The receive path's timeouts, which the HTTP protocol sweeps instead of a loop timer each
request: an idle keep-alive connection is closed once its timeout has passed (not before),
one that keeps sending is not, and a body deadline still answers 408 when other connections
come and go meanwhile. Real uvicorn with Hookhub's protocol on loopback, SQLite.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hookhub.services import Services, build_services
from hookhub.store.migrate import migrate
from tests.conftest import API_KEY, make_settings
from tests.support.inbound import Hook, create_hook, fixture
from tests.support.wire import ThreadedServer, Wire

KEEP_ALIVE = 1
BODY_TIMEOUT = 1.0
STRIPE = fixture("stripe_customer_created")


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    built = build_services(
        make_settings(f"sqlite:///{tmp_path / 'hookhub.db'}", receive_body_timeout=BODY_TIMEOUT)
    )
    migrate(built.db)
    built.keys.adopt("tests", API_KEY)
    yield built
    built.close()


@pytest.fixture
def server(services: Services) -> Iterator[ThreadedServer]:
    running = ThreadedServer(services)
    running.server.config.timeout_keep_alive = KEEP_ALIVE
    with running:
        yield running


@pytest.fixture
def hook(client: Any) -> Hook:
    return create_hook(client, "stripe", secret="whsec_timeout_tests")


def signed_request(hook: Hook, event_id: str) -> bytes:
    body = STRIPE.replace(b'"evt_', b'"evt_' + event_id.encode(), 1)
    lines = [b"POST %s HTTP/1.1" % hook.path.encode(), b"host: 127.0.0.1"]
    lines += [f"{name}: {value}".encode() for name, value in hook.sign(body).items()]
    lines.append(b"content-length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(
    server: ThreadedServer, hook: Hook
) -> None:
    wire = Wire(server.port)
    try:
        wire.send(signed_request(hook, "idle1"))
        assert wire.answer().status == 202
        answered = time.monotonic()
        assert wire.at_eof(), "the server closes an idle connection"
        assert time.monotonic() - answered >= KEEP_ALIVE * 0.95, "not before its timeout"
    finally:
        wire.close()


def test_a_connection_in_use_is_kept_past_the_keep_alive_timeout(
    server: ThreadedServer, hook: Hook
) -> None:
    wire = Wire(server.port)
    try:
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < KEEP_ALIVE * 2.5:
            wire.send(signed_request(hook, f"busy{sent}"))
            assert wire.answer().status == 202
            sent += 1
            time.sleep(KEEP_ALIVE / 3)
        wire.send(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        assert wire.answer().status == 200
    finally:
        wire.close()


def test_a_body_deadline_fires_while_other_connections_come_and_go(
    server: ThreadedServer, hook: Hook
) -> None:
    slow = Wire(server.port)
    try:
        request = signed_request(hook, "slow")
        slow.send(request[:-10])  # the body never completes
        sent_at = time.monotonic()
        for n in range(5):  # other connections' answers and keep-alives meanwhile
            other = Wire(server.port)
            other.send(signed_request(hook, f"other{n}"))
            assert other.answer().status == 202
            other.close()
        answer = slow.answer()
        assert answer.status == 408
        assert time.monotonic() - sent_at >= BODY_TIMEOUT * 0.95
        assert slow.at_eof()
    finally:
        slow.close()
