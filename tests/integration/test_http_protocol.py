"""``POST /in/{token}`` through the real HTTP server, where the protocol answers it without ASGI.

``hookhub serve`` runs uvicorn with :class:`hookhub.api.http.HookhubHttpProtocol`, which takes
inbound requests itself (see its module). What uvicorn's request cycle did for them is now its
job, so it is tested here on raw sockets, bytes on the wire: keep-alive, pipelined requests
answered in order and mixed with ASGI ones, ``Expect: 100-continue``, the body limit (413 and the
connection closed, the rest unread), chunked bodies, HTTP/1.0, ``Connection: close``, a client
that leaves before its answer, and whatever a sender puts in headers and body (no 5xx). The
server runs in a thread of this process on a loopback port, on SQLite.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookhub.inbound.receiver import InboundReceiver
from hookhub.services import Services, build_services
from hookhub.store.migrate import migrate
from tests.conftest import API_KEY, make_settings
from tests.support.inbound import Hook, create_hook, fixture, log_statuses
from tests.support.wire import ThreadedServer, Wire

LIMIT = 4096  # the body limit of the server under test
STRIPE = fixture("stripe_customer_created")


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    built = build_services(
        make_settings(f"sqlite:///{tmp_path / 'hookhub.db'}", max_body_bytes=LIMIT)
    )
    migrate(built.db)
    built.keys.adopt("tests", API_KEY)
    yield built
    built.close()


@pytest.fixture
def server(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadedServer]:
    with ThreadedServer(services) as running:
        asgi_call = InboundReceiver.__call__

        async def counted(receiver: InboundReceiver, *args: Any) -> None:
            running.asgi_calls += 1
            await asgi_call(receiver, *args)

        monkeypatch.setattr(InboundReceiver, "__call__", counted)
        yield running


@pytest.fixture
def hook(client: Any) -> Hook:
    return create_hook(client, "stripe", secret="whsec_protocol_tests")


@pytest.fixture
def wire(server: ThreadedServer) -> Iterator[Wire]:
    connection = Wire(server.port)
    yield connection
    connection.close()


def event(n: int) -> bytes:
    """The Stripe fixture as event number ``n`` (its own id, so no duplicate)."""
    payload = json.loads(STRIPE)
    payload["id"] = f"evt_protocol_{n}"
    payload["data"]["object"]["email"] = f"protocol{n}@example.com"
    return json.dumps(payload).encode()


def post(
    hook: Hook,
    body: bytes,
    *,
    signed: bool = True,
    extra: bytes = b"",
    path: str | None = None,
    version: bytes = b"1.1",
) -> bytes:
    """A whole request as bytes, signed the way Stripe signs."""
    headers = hook.sign(body) if signed else {}
    lines = [b"POST %s HTTP/%s" % ((path or hook.path).encode(), version)]
    lines += [b"host: 127.0.0.1", b"content-type: application/json"]
    lines += [f"{name}: {value}".encode() for name, value in headers.items()]
    lines.append(b"content-length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n" + extra + b"\r\n" + body


HEALTH = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"


def test_requests_on_one_kept_alive_connection(
    server: ThreadedServer, wire: Wire, hook: Hook, services: Services
) -> None:
    wire.send(post(hook, event(1)))
    first = wire.answer()
    wire.send(post(hook, event(2)))
    second = wire.answer()
    wire.send(post(hook, event(1)))
    again = wire.answer()

    assert (first.status, second.status, again.status) == (202, 202, 200)
    assert first.json() == {"request_id": first.json()["request_id"], "status": "queued"}
    assert second.json()["request_id"] > first.json()["request_id"]
    assert again.json()["status"] == "duplicate"
    for answer in (first, second, again):
        assert answer.headers["content-type"] == "application/json"
        assert int(answer.headers["content-length"]) == len(answer.body)
        assert "date" in answer.headers
        assert "connection" not in answer.headers
    assert server.asgi_calls == 0
    assert log_statuses(services)[-3:] in (
        ["received", "received", "duplicate"],
        ["processed", "processed", "duplicate"],
    )


def test_pipelined_requests_are_answered_in_order(
    server: ThreadedServer, wire: Wire, hook: Hook
) -> None:
    # Inbound, ASGI, inbound, unknown token, ASGI: one write, five answers in that order.
    unknown = post(hook, event(9), path="/in/" + "x" * 32)
    wire.send(post(hook, event(1)) + HEALTH + post(hook, event(2)) + unknown + HEALTH)
    answers = wire.answers(5)

    assert [a.status for a in answers] == [202, 200, 202, 404, 200]
    assert answers[1].json()["status"] == "ok"
    assert answers[3].json()["error"]["code"] == "not_found"
    assert answers[2].json()["request_id"] > answers[0].json()["request_id"]
    assert server.asgi_calls == 0


def test_a_request_behind_a_slow_asgi_one_waits_its_turn(wire: Wire, hook: Hook) -> None:
    # The inbound request is complete before the API call's answer; it must come second.
    listing = b"GET /api/v1/contacts?limit=100 HTTP/1.1\r\nhost: x\r\n"
    listing += f"authorization: Bearer {API_KEY}\r\n\r\n".encode()
    wire.send(listing + post(hook, event(1)))
    first, second = wire.answers(2)
    assert first.status == 200
    assert "data" in first.json()
    assert second.status == 202


def test_expect_100_continue(wire: Wire, hook: Hook) -> None:
    request = post(hook, event(1), extra=b"expect: 100-continue\r\n")
    head, body = request.split(b"\r\n\r\n", 1)
    wire.send(head + b"\r\n\r\n")
    assert wire.answer().status == 100
    wire.send(body)
    assert wire.answer().status == 202


def test_expect_100_continue_for_a_body_over_the_limit_gets_413_instead(
    wire: Wire, hook: Hook
) -> None:
    head = b"POST %s HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\n" % hook.path.encode()
    wire.send(head + b"content-length: %d\r\n\r\n" % (LIMIT + 1))
    answer = wire.answer()
    assert answer.status == 413
    assert answer.headers["connection"] == "close"
    assert wire.at_eof()
    assert b"100 Continue" not in wire.raw


def test_a_declared_length_over_the_limit_is_refused_without_reading_the_body(
    wire: Wire, hook: Hook, services: Services
) -> None:
    head = b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n" % (
        hook.path.encode()
    )
    wire.send(head + b"content-length: %d\r\n\r\n" % (50 * LIMIT) + b"{" * 100)
    answer = wire.answer()

    assert answer.status == 413
    assert answer.json()["error"]["details"] == {"limit": LIMIT}
    assert answer.headers["connection"] == "close"
    assert wire.at_eof()
    assert log_statuses(services) == ["rejected"]


def test_a_chunked_body_over_the_limit_is_cut_off(
    wire: Wire, hook: Hook, services: Services
) -> None:
    head = b"POST %s HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n" % (
        hook.path.encode()
    )
    chunk = b"x" * 1000
    wire.send(head + b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5)))
    answer = wire.answer()
    assert answer.status == 413
    assert wire.at_eof()
    assert log_statuses(services) == ["rejected"]


def test_a_chunked_body_within_the_limit_is_received(wire: Wire, hook: Hook) -> None:
    body = event(1)
    headers = "".join(f"{k}: {v}\r\n" for k, v in hook.sign(body).items()).encode()
    head = b"POST %s HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n%s\r\n" % (
        hook.path.encode(),
        headers,
    )
    pieces = [body[i : i + 100] for i in range(0, len(body), 100)]
    wire.send(head + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n")
    assert wire.answer().status == 202


def test_http_1_0_and_connection_close_end_the_connection(
    server: ThreadedServer, hook: Hook
) -> None:
    for request in (
        post(hook, event(1), version=b"1.0"),
        post(hook, event(2), extra=b"connection: close\r\n"),
    ):
        wire = Wire(server.port)
        try:
            wire.send(request)
            answer = wire.answer()
            assert answer.status == 202
            assert answer.headers["connection"] == "close"
            assert wire.at_eof()
        finally:
            wire.close()


def test_refusals_answer_json_and_keep_the_connection(
    server: ThreadedServer, wire: Wire, hook: Hook, client: Any
) -> None:
    wire.send(post(hook, event(1), signed=False))
    unsigned = wire.answer()
    assert unsigned.status == 401
    assert unsigned.json()["error"]["code"] == "invalid_signature"
    assert unsigned.json()["request_id"] > 0

    wire.send(post(hook, event(2), path="/in/short"))
    assert wire.answer().status == 404

    # Not a POST, or a percent-encoded path: the ASGI app's answer, same connection.
    wire.send(b"GET %s HTTP/1.1\r\nhost: x\r\n\r\n" % hook.path.encode())
    not_post = wire.answer()
    assert not_post.status == 405
    assert not_post.headers["allow"] == "POST"
    encoded = hook.path.replace("/in/", "/in/%") + "zz"
    wire.send(post(hook, event(3), path=encoded))
    assert wire.answer().status in (400, 404)
    assert server.asgi_calls == 2

    client.patch(f"/api/v1/inbound-webhooks/{hook.id}", json={"rate_limit": 1})
    time.sleep(0.1)
    statuses = []
    for n in range(4, 8):
        wire.send(post(hook, event(n)))
        answer = wire.answer()
        statuses.append(answer.status)
        if answer.status == 429:
            assert int(answer.headers["retry-after"]) >= 1
    assert 429 in statuses
    wire.send(HEALTH)
    assert wire.answer().status == 200


def test_a_sender_that_leaves_before_its_answer_is_still_logged(
    server: ThreadedServer, hook: Hook, services: Services
) -> None:
    for n in range(20):
        wire = Wire(server.port)
        wire.send(post(hook, event(n)))
        wire.sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        wire.close()  # a reset, before the commit answers
    deadline = time.monotonic() + 10
    while len(log_statuses(services)) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(log_statuses(services)) == 20
    later = Wire(server.port)
    try:
        later.send(post(hook, event(99)))
        assert later.answer().status == 202
    finally:
        later.close()


def test_many_connections_at_once(server: ThreadedServer, hook: Hook, services: Services) -> None:
    async def one(n: int) -> list[int]:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        statuses = []
        try:
            for k in range(5):
                writer.write(post(hook, event(n * 10 + k)))
                await writer.drain()
                line = await reader.readuntil(b"\r\n")
                statuses.append(int(line.split()[1]))
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
        finally:
            writer.close()
        return statuses

    async def many() -> list[list[int]]:
        return await asyncio.gather(*(one(n) for n in range(40)))

    results = asyncio.run(many())
    assert all(statuses == [202] * 5 for statuses in results)
    assert len(log_statuses(services)) == 200


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    headers=st.lists(
        st.tuples(
            st.sampled_from(
                [b"stripe-signature", b"content-type", b"x-anything", b"expect", b"connection"]
            ),
            st.binary(max_size=120).map(
                lambda v: bytes(b for b in v if b not in b"\r\n\x00") or b"x"
            ),
        ),
        max_size=5,
    ),
    body=st.binary(max_size=2 * LIMIT),
)
def test_whatever_is_sent_no_5xx(
    server: ThreadedServer, hook: Hook, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    wire = Wire(server.port)
    try:
        head = b"POST %s HTTP/1.1\r\nhost: x\r\n" % hook.path.encode()
        head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        sent_expect = any(name == b"expect" for name, _ in headers)
        wire.send(head + b"content-length: %d\r\n\r\n" % len(body) + body)
        answer = wire.answer()
        if answer.status == 100 and sent_expect:
            answer = wire.answer()
        assert answer.status < 500, answer.body
    except AssertionError as exc:
        if "connection closed after 0 answers" not in str(exc):
            raise
        # uvicorn closes on a request it cannot parse (a 400 first): never a 5xx.
        assert b" 5" not in wire.raw[:12]
    finally:
        wire.close()
