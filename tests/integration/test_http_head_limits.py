"""The request head limits on every route the HTTP protocol takes itself (``/in/``, ``/t/``)
and on the ASGI path, on the wire: a field over 8 KiB or more than 100 fields is 431 wherever
the request goes, and the 64 KiB limit is one head's, not a connection's: a keep-alive
connection carries any number of requests whose heads are each well within it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hookhub.services import Services
from tests.support.inbound import Hook, create_hook, fixture
from tests.support.tracking import path, sent_email
from tests.support.wire import ThreadedServer, Wire

STRIPE = fixture("stripe_customer_created")
PAD = b"x-pad: " + b"p" * 2000


@pytest.fixture
def server(services: Services) -> Iterator[ThreadedServer]:
    with ThreadedServer(services) as running:
        yield running


@pytest.fixture
def wire(server: ThreadedServer) -> Iterator[Wire]:
    connection = Wire(server.port)
    yield connection
    connection.close()


@pytest.fixture
def hook(client: Any) -> Hook:
    return create_hook(client, "stripe", secret="whsec_head_limits")


def request(method: str, target: str, *lines: bytes, body: bytes = b"") -> bytes:
    head = [f"{method} {target} HTTP/1.1".encode(), b"host: x", *lines]
    if body:
        head.append(b"content-length: %d" % len(body))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def signed(hook: Hook, n: int) -> bytes:
    body = STRIPE.replace(b'"evt_', b'"evt_limits%d' % n, 1)
    lines = [f"{name}: {value}".encode() for name, value in hook.sign(body).items()]
    return request("POST", hook.path, PAD, *lines, body=body)


def targets(services: Services, hook: Hook) -> dict[str, str]:
    return {"in": hook.path, "t": path(services, "o", sent_email(services)), "asgi": "/healthz"}


@pytest.mark.parametrize("route", ["in", "t", "asgi"])
def test_a_field_over_8_kib_is_431_on_every_route(
    server: ThreadedServer, services: Services, hook: Hook, route: str
) -> None:
    target = targets(services, hook)[route]
    wire = Wire(server.port)
    try:
        wire.send(request("GET", target, b"x-big: " + b"a" * (8 * 1024 + 1)))
        answer = wire.answer()
        assert answer.status == 431
        assert answer.json()["error"]["code"] == "request_header_fields_too_large"
        assert wire.at_eof()
    finally:
        wire.close()


@pytest.mark.parametrize("route", ["in", "t", "asgi"])
def test_more_than_100_fields_is_431_on_every_route(
    server: ThreadedServer, services: Services, hook: Hook, route: str
) -> None:
    target = targets(services, hook)[route]
    wire = Wire(server.port)
    try:
        wire.send(request("GET", target, *[b"x-h%d: v" % i for i in range(101)]))
        assert wire.answer().status == 431
        assert wire.at_eof()
    finally:
        wire.close()


def test_a_keep_alive_connection_carries_far_more_than_64_kib_of_heads(
    wire: Wire, services: Services, hook: Hook
) -> None:
    pixel = path(services, "o", sent_email(services))
    for n in range(20):  # about 2 KiB of head each, 3 routes: 120 KiB on one connection
        wire.send(signed(hook, n))
        assert wire.answer().status == 202
        wire.send(request("GET", pixel, PAD))
        assert wire.answer().status == 200
        wire.send(request("GET", "/healthz", PAD))
        assert wire.answer().status == 200
    for _ in range(40):  # and one route after the other: 80 KiB of /t/ heads in a row
        wire.send(request("GET", pixel, PAD))
        assert wire.answer().status == 200
