"""What a client can make the HTTP server read before it is refused, on raw sockets.

Request heads are bounded for every request (8 KiB a header field, 100 fields, 64 KiB in all:
past them, 431 in JSON and the connection closed, the rest never read, even for one header
trickled in small pieces). A receive URL's token is looked up as soon as the headers are in: an
unknown or malformed one is answered 404 without reading a large body, and no ``100 Continue``
invites it. A body that does not arrive within ``HOOKHUB_RECEIVE_BODY_TIMEOUT`` of its headers
(a slowloris sender) is answered 408. The server runs in a thread on a loopback port, SQLite.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hookhub.services import Services, build_services
from hookhub.store.migrate import migrate
from tests.conftest import API_KEY, make_settings
from tests.support.inbound import Hook, create_hook, fixture, log_statuses
from tests.support.wire import Answer, ThreadedServer, Wire

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
    with ThreadedServer(services) as running:
        yield running


@pytest.fixture
def hook(client: Any) -> Hook:
    return create_hook(client, "stripe", secret="whsec_edge_tests")


@pytest.fixture
def wire(server: ThreadedServer) -> Iterator[Wire]:
    connection = Wire(server.port)
    yield connection
    connection.close()


def head(path: str, *lines: bytes, length: int | None = None) -> bytes:
    parts = [b"POST %s HTTP/1.1" % path.encode(), b"host: 127.0.0.1", *lines]
    if length is not None:
        parts.append(b"content-length: %d" % length)
    return b"\r\n".join(parts) + b"\r\n\r\n"


def signed(hook: Hook, body: bytes) -> list[bytes]:
    return [f"{name}: {value}".encode() for name, value in hook.sign(body).items()]


def trickle(wire: Wire, data: bytes, piece: int) -> int:
    """Send ``data`` in pieces until the server answers or closes; answers the bytes sent."""
    sent = 0
    wire.sock.settimeout(10)
    for start in range(0, len(data), piece):
        try:
            wire.sock.sendall(data[start : start + piece])
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += piece
        if sent % (64 * piece) == 0 and _readable(wire.sock):
            break
    return sent


def _readable(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)
        sock.settimeout(10)


def refused_431(answer: Answer) -> None:
    assert answer.status == 431
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"]["code"] == "request_header_fields_too_large"
    assert answer.headers["connection"] == "close"


# -- item 5: request heads are bounded -----------------------------------------------------------


@pytest.mark.parametrize("path", ["/in/", "/healthz"])
def test_a_header_field_over_8_kib_is_431(server: ThreadedServer, hook: Hook, path: str) -> None:
    target = hook.path if path == "/in/" else path
    wire = Wire(server.port)
    try:
        wire.send(head(target, b"x-big: " + b"a" * (8 * 1024 + 1), length=2) + b"{}")
        refused_431(wire.answer())
        assert wire.at_eof()
    finally:
        wire.close()


def test_too_many_headers_is_431(wire: Wire, hook: Hook) -> None:
    many = [b"x-h%d: v" % i for i in range(101)]
    wire.send(head(hook.path, *many, length=2) + b"{}")
    refused_431(wire.answer())
    assert wire.at_eof()


def test_one_endless_header_in_small_pieces_is_cut_off(
    wire: Wire, hook: Hook, services: Services
) -> None:
    start = b"POST %s HTTP/1.1\r\nhost: x\r\nx-endless: " % hook.path.encode()
    sent = trickle(wire, start + b"a" * (8 * 1024 * 1024), piece=512)
    refused_431(wire.answer())
    assert sent < 8 * 1024 * 1024, "answered long before the 8 MiB were sent"
    assert log_statuses(services) == []


def test_a_head_over_64_kib_in_all_is_431(wire: Wire, hook: Hook) -> None:
    fields = [b"x-pad-%d: %s" % (i, b"p" * 800) for i in range(90)]  # 72 KiB, each field small
    wire.send(head(hook.path, *fields, length=2) + b"{}")
    refused_431(wire.answer())


def test_a_head_within_the_limits_is_taken(wire: Wire, hook: Hook) -> None:
    fields = [b"x-pad-%d: %s" % (i, b"p" * 500) for i in range(90)]  # 45 KiB
    wire.send(head(hook.path, *fields, *signed(hook, STRIPE), length=len(STRIPE)) + STRIPE)
    assert wire.answer().status == 202


def test_a_malformed_request_is_answered_400_in_json(wire: Wire) -> None:
    wire.send(b"POST /in/x HTTP/1.1\r\nhost: x\r\ncontent-length: nope\r\n\r\n")
    answer = wire.answer()
    assert answer.status == 400
    assert answer.json()["error"]["code"] == "bad_request"


# -- item 6: the token before the body, and a deadline for the body ----------------------------


@pytest.mark.parametrize(
    "token", ["unknownunknownunknownunk", "short", "bad!chars!in!this!token!", "a" * 65]
)
def test_an_unknown_or_malformed_token_is_404_before_the_body(
    wire: Wire, services: Services, token: str
) -> None:
    # A megabyte announced and none of it sent: the answer cannot have waited for it.
    wire.send(head("/in/" + token, b"content-type: application/json", length=1024 * 1024))
    answer = wire.answer()
    assert answer.status == 404
    assert answer.json()["error"]["code"] == "not_found"
    assert answer.headers.get("connection") == "close", bytes(wire.raw)
    assert wire.at_eof()
    assert log_statuses(services) == []


def test_an_unknown_token_gets_no_100_continue(wire: Wire) -> None:
    wire.send(head("/in/unknownunknownunknownunk", b"expect: 100-continue", length=1024))
    answer = wire.answer()
    assert answer.status == 404  # not 100: the body is never asked for
    assert wire.at_eof()


def test_a_deleted_webhook_is_404_before_the_body(wire: Wire, hook: Hook, client: Any) -> None:
    assert client.delete(f"/api/v1/inbound-webhooks/{hook.id}").status_code == 204
    wire.send(head(hook.path, length=1024 * 1024))
    assert wire.answer().status == 404
    assert wire.at_eof()


def test_a_body_that_stops_arriving_is_408(wire: Wire, hook: Hook, services: Services) -> None:
    wire.send(head(hook.path, *signed(hook, STRIPE), length=len(STRIPE)) + STRIPE[:10])
    answer = wire.answer()
    assert answer.status == 408
    assert answer.json()["error"]["code"] == "request_timeout"
    assert answer.json()["error"]["details"] == {"timeout": BODY_TIMEOUT}
    assert answer.headers["connection"] == "close"
    assert wire.at_eof()
    assert log_statuses(services) == []


def test_a_slowloris_body_is_408_although_bytes_keep_coming(wire: Wire, hook: Hook) -> None:
    wire.send(head(hook.path, *signed(hook, STRIPE), length=len(STRIPE)))
    answers: list[Answer] = []
    wire.sock.settimeout(0.2)
    for byte in STRIPE[:-1]:  # one byte every 0.2 s: never idle, never done
        try:
            wire.send(bytes([byte]))
            data = wire.sock.recv(65536)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
        if not data:
            break
        wire.parsed.parser.feed_data(data)
        answers = wire.parsed.answers
        if answers:
            break
    assert [a.status for a in answers] == [408]


def test_a_body_in_time_is_taken_and_the_connection_kept(
    wire: Wire, hook: Hook, services: Services
) -> None:
    wire.send(head(hook.path, *signed(hook, STRIPE), length=len(STRIPE)) + STRIPE[:100])
    time.sleep(BODY_TIMEOUT / 4)
    wire.send(STRIPE[100:])
    assert wire.answer().status == 202
    time.sleep(BODY_TIMEOUT * 1.5)  # the finished request's deadline does not fire later
    wire.send(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
    assert wire.answer().status == 200
    assert log_statuses(services) == ["received"]


def test_the_asgi_path_also_looks_up_before_reading(client: Any, hook: Hook) -> None:
    """Any other server runs the receiver as an ASGI app: the same order there."""
    import asyncio

    taken: list[int] = []

    async def call(path: str) -> int:
        status = 0

        async def receive() -> dict[str, Any]:
            taken.append(1)
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        scope = {"type": "http", "method": "POST", "path": path, "headers": []}
        await client.app.receiver(scope, receive, send)
        return status

    assert asyncio.run(call("/in/unknownunknownunknownunk")) == 404
    assert taken == []
    assert json.loads(STRIPE)  # the fixture parses (sanity)
