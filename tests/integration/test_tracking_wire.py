"""The tracking routes through the real HTTP server, where the protocol answers them without ASGI
(``hookhub.api.tracking_http``), bytes on the wire, both backends: the pixel's exact answer,
keep-alive and pipelining mixed with other routes, HEAD, one-click unsubscribe with a body and
``Expect: 100-continue``, bodies over the limit, hostile paths (never a 5xx); then hits turned
into ``email.opened``/``email.clicked`` delivered to a subscribed endpoint, each once."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hookhub.email.tracking_answers import PIXEL
from hookhub.email.tracking_processor import TrackingApplier, TrackingProcessor
from hookhub.email.tracking_receiver import TrackingReceiver
from hookhub.services import Services
from tests.support.delivery import running_worker, verify
from tests.support.receiver import running_receiver
from tests.support.tracking import LINKS, path, payloads, sent_email
from tests.support.wire import ThreadedServer, Wire

HEALTH = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"
AGENT = b"user-agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0\r\n"


@pytest.fixture
def server(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadedServer]:
    with ThreadedServer(services) as running:
        asgi_call = TrackingReceiver.__call__

        async def counted(receiver: TrackingReceiver, *args: Any) -> None:
            running.asgi_calls += 1
            await asgi_call(receiver, *args)

        monkeypatch.setattr(TrackingReceiver, "__call__", counted)
        yield running


@pytest.fixture
def wire(server: ThreadedServer) -> Iterator[Wire]:
    connection = Wire(server.port)
    yield connection
    connection.close()


def get(target: str, method: str = "GET", extra: bytes = AGENT) -> bytes:
    return f"{method} {target} HTTP/1.1\r\nhost: x\r\n".encode() + extra + b"\r\n"


def raw_until(sock: socket.socket, marker: bytes, count: int) -> bytes:
    """Bytes read until ``marker`` was seen ``count`` times (for HEAD answers, which a response
    parser cannot tell from a body's start)."""
    data = b""
    deadline = time.monotonic() + 10
    while data.count(marker) < count and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_pixel_on_the_wire(server: ThreadedServer, wire: Wire, services: Services) -> None:
    email_id = sent_email(services)
    wire.send(get(path(services, "o", email_id)))
    answer = wire.answer()
    assert answer.status == 200
    assert answer.body == PIXEL
    assert answer.headers["content-type"] == "image/gif"
    assert answer.headers["content-length"] == "43"
    assert answer.headers["cache-control"] == "no-store, no-cache, must-revalidate, private"
    assert "connection" not in answer.headers
    assert "date" in answer.headers
    wire.send(get(path(services, "o", email_id)))  # the same connection, kept alive
    assert wire.answer().status == 200
    assert server.asgi_calls == 0


def test_pipelined_tracking_and_other_requests_in_order(
    server: ThreadedServer, wire: Wire, services: Services
) -> None:
    email_id = sent_email(services)
    bad = path(services, "c", email_id, 1)[:-2] + "zz"
    wire.send(
        get(path(services, "o", email_id))
        + HEALTH
        + get(path(services, "c", email_id, 1))
        + get(bad)
        + get(path(services, "u", email_id))
        + HEALTH
    )
    answers = wire.answers(6)
    assert [a.status for a in answers] == [200, 200, 302, 404, 200, 200]
    assert answers[0].body == PIXEL
    assert answers[2].headers["location"] == LINKS[1]
    assert answers[3].json()["error"]["code"] == "not_found"
    assert "ada@example.com" in answers[4].body.decode()
    assert server.asgi_calls == 0
    applier = TrackingApplier(services.db, services.outbox)
    assert applier.apply_batch() == 2


def test_head_answers_headers_only_and_keeps_the_connection(
    server: ThreadedServer, services: Services
) -> None:
    email_id = sent_email(services)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        sock.sendall(get(path(services, "o", email_id), "HEAD") + HEALTH)
        data = raw_until(sock, b"HTTP/1.1 ", 2)
    finally:
        sock.close()
    head, rest = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"content-length: 43" in head
    assert rest.startswith(b"HTTP/1.1 200 OK")  # no body between the answers
    with services.db.read() as conn:
        from hookhub.store.tracking import TrackingHitStore

        assert TrackingHitStore(conn).count() == 0


def test_one_click_unsubscribe_on_the_wire(
    server: ThreadedServer, wire: Wire, services: Services
) -> None:
    email_id = sent_email(services, "dan@example.com")
    body = b"List-Unsubscribe=One-Click"
    head = get(
        path(services, "u", email_id),
        "POST",
        b"content-type: application/x-www-form-urlencoded\r\nexpect: 100-continue\r\n"
        b"content-length: %d\r\n" % len(body),
    )
    wire.send(head)
    assert wire.answer().status == 100
    wire.send(body)
    answer = wire.answer()
    assert answer.status == 200
    assert b"dan@example.com" in answer.body
    assert server.asgi_calls == 0
    TrackingApplier(services.db, services.outbox).apply_batch()
    (unsubscribed,) = payloads(services, "contact.unsubscribed")
    assert unsubscribed["email_id"] == email_id


def test_bodies_over_the_limit_are_refused_and_end_the_connection(
    server: ThreadedServer, services: Services
) -> None:
    email_id = sent_email(services)
    for framing in (b"content-length: 40000\r\n", b"transfer-encoding: chunked\r\n"):
        wire = Wire(server.port)
        try:
            chunk = b"x" * 8000
            payload = chunk * 5 if b"length" in framing else b"1f40\r\n" + chunk + b"\r\n"
            if b"chunked" in framing:
                payload *= 5
            wire.send(get(path(services, "u", email_id), "POST", framing) + payload)
            answer = wire.answer()
            assert answer.status == 413
            assert answer.headers["connection"] == "close"
            assert wire.at_eof()
        finally:
            wire.close()


def test_hostile_paths_are_404_never_5xx(server: ThreadedServer, services: Services) -> None:
    email_id = sent_email(services)
    good = path(services, "c", email_id, 0)
    targets = [
        b"/t/c/" + bytes([0xC3, 0xA9]) * 10,
        b"/t/c/" + b"A" * 7000,
        good.encode() + b"%2F..",
        good.encode() + b"/",
        good.encode() + b"?next=https://evil.example",
        b"/t/o/%00",
        b"/t/u/" + b"\xff" * 30,
        b"/t/../api/v1/contacts",
        good.encode().upper(),
    ]
    for target in targets:
        wire = Wire(server.port)
        try:
            wire.send(b"GET " + target + b" HTTP/1.1\r\nhost: x\r\n\r\n")
            answer = wire.answer()
            if target.startswith(good.encode() + b"?"):
                assert answer.status == 302  # the query is ignored; the stored link stays
                assert answer.headers["location"] == LINKS[0]
            else:
                assert answer.status in (400, 404), target
        finally:
            wire.close()
    # HTTP/1.0 and Connection: close end the connection after the answer.
    for request in (
        b"GET %s HTTP/1.0\r\n\r\n" % good.encode(),
        get(good, extra=b"connection: close\r\n"),
    ):
        wire = Wire(server.port)
        try:
            wire.send(request)
            answer = wire.answer()
            assert answer.status == 302
            assert answer.headers["connection"] == "close"
            assert wire.at_eof()
        finally:
            wire.close()


async def test_hits_become_events_delivered_once(
    server: ThreadedServer, services: Services
) -> None:
    email_id = sent_email(services)
    processor = TrackingProcessor(TrackingApplier(services.db, services.outbox), poll_interval=0.05)
    async with running_receiver() as receiver, running_worker(services):
        endpoint = services.endpoints.create(
            {"url": receiver.url, "events": ["email.opened", "email.clicked"]}
        )
        task = asyncio.create_task(processor.run())
        try:

            def hit_all() -> list[int]:
                wire = Wire(server.port)
                try:
                    wire.send(get(path(services, "o", email_id)))
                    wire.send(get(path(services, "c", email_id, 0)))
                    return [a.status for a in wire.answers(2)]
                finally:
                    wire.close()

            assert await asyncio.to_thread(hit_all) == [200, 302]
            await receiver.wait_for(2)
            await asyncio.sleep(1.0)  # nothing more comes: each hit applied once
        finally:
            processor.stop()
            await asyncio.wait_for(task, 10)
    bodies = sorted((verify(endpoint.secret, r) for r in receiver.requests), key=str)
    assert sorted(b["type"] for b in bodies) == ["email.clicked", "email.opened"]
    for body in bodies:
        assert body["data"]["email_id"] == email_id
        assert body["data"]["first"] is True
        assert body["data"]["proxy"] is False
    (clicked,) = [b for b in bodies if b["type"] == "email.clicked"]
    assert clicked["data"]["url"] == LINKS[0]


def test_a_body_that_does_not_arrive_in_time_is_408(
    server: ThreadedServer, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hookhub.api import tracking_http

    monkeypatch.setattr(tracking_http, "BODY_TIMEOUT", 0.5)
    email_id = sent_email(services)
    wire = Wire(server.port)
    try:
        wire.send(
            get(path(services, "u", email_id), "POST", b"content-length: 100\r\n") + b"x" * 10
        )
        answer = wire.answer()
        assert answer.status == 408
        assert answer.headers["connection"] == "close"
        assert wire.at_eof()
    finally:
        wire.close()


def test_thousands_of_hits_on_one_connection(
    server: ThreadedServer, wire: Wire, services: Services
) -> None:
    # Far more than one head's limit in total (64 KiB): each head is counted on its own.
    email_id = sent_email(services)
    request = get(path(services, "o", email_id)) + get(path(services, "c", email_id, 0))
    for _ in range(10):
        wire.send(request * 50)
        assert {a.status for a in wire.answers(100)} == {200, 302}
    assert server.asgi_calls == 0


def test_a_head_over_the_limits_is_431(server: ThreadedServer, services: Services) -> None:
    email_id = sent_email(services)
    for extra in (
        b"x-big: " + b"a" * 9000 + b"\r\n",
        b"".join(b"x-%d: 1\r\n" % n for n in range(120)),
    ):
        wire = Wire(server.port)
        try:
            wire.send(get(path(services, "o", email_id), extra=extra))
            answer = wire.answer()
            assert answer.status == 431
            assert answer.json()["error"]["code"] == "request_header_fields_too_large"
        finally:
            wire.close()
