"""The real HTTP sender over loopback sockets: what receivers get, and what never reaches them.

Every destination here is on this machine. Refusals are checked against listeners that count
connections and bytes, so "refused" means nothing arrived, not merely that an error came back.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from hookhub.core.urlguard import DestinationPolicy
from hookhub.outbound.http11 import Http11Transport
from hookhub.outbound.sender import AiohttpTransport
from hookhub.outbound.transport import (
    MAX_RESPONSE_BODY,
    AttemptResult,
    RecordingTransport,
    Transport,
    network_error,
    respond,
)

USER_AGENT = "hookhub/test"
SECRET = "s3cr3t-token-value"
BODY = '{"type":"contact.created","data":{"email":"ada@example.com","name":"Zoë"}}'.encode()
HEADERS = {
    "content-type": "application/json",
    "webhook-id": "msg_2bV8Yk",
    "webhook-timestamp": "1700000000",
    "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
    "X-Custom": "custom value",
    "Authorization": f"Bearer {SECRET}",
}


def can_bind(family: socket.AddressFamily, host: str) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
    except OSError:
        return False
    return True


HAS_IPV6_LOOPBACK = can_bind(socket.AF_INET6, "::1")
HAS_127_0_0_2 = can_bind(socket.AF_INET, "127.0.0.2")


class CountingListener:
    """A plain TCP listener that counts connections and bytes; optionally answers HTTP 204."""

    def __init__(self, *, answer: bool = True, reset: bool = False) -> None:
        self.answer = answer
        self.reset = reset
        self.connections = 0
        self.received = bytearray()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int = 0) -> CountingListener:
        self._server = await asyncio.start_server(self._handle, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.received += head
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                self.received += await reader.readexactly(length)
                if self.reset:
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                if not self.answer:
                    self.received += await reader.read()  # hold the connection, say nothing
                    return
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()


class Receiver:
    """An aiohttp server on 127.0.0.1 playing the various receivers a webhook can meet."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.requests: list[dict[str, Any]] = []
        self.release = asyncio.Event()
        self.redirect_to = ""
        self.endless_bytes_sent = 0
        self.port = 0
        app = web.Application()
        app.router.add_post("/echo", self.echo)
        app.router.add_post("/status/{code}", self.status)
        app.router.add_post("/redirect", self.redirect)
        app.router.add_post("/slow", self.slow)
        app.router.add_post("/slow-body", self.slow_body)
        app.router.add_post("/big", self.big)
        app.router.add_post("/endless", self.endless)
        self._runner = web.AppRunner(app, shutdown_timeout=5)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.release.set()
        await self._runner.cleanup()

    async def echo(self, request: web.Request) -> web.Response:
        assert request.transport is not None
        self.requests.append(
            {
                "body": await request.read(),
                "headers": request.headers.copy(),
                "peer": request.transport.get_extra_info("peername"),
            }
        )
        return web.Response(text="thanks")

    async def status(self, request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        await request.read()
        return web.Response(
            status=code, text=f"failure body {code}", headers={"Retry-After": "120"}
        )

    async def redirect(self, request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": self.redirect_to})

    async def slow(self, request: web.Request) -> web.Response:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.release.wait(), 30)
        return web.Response(text="late")

    async def slow_body(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        response.content_length = 1000
        await response.prepare(request)
        await response.write(b"partial")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.release.wait(), 30)
        return response

    async def big(self, request: web.Request) -> web.Response:
        return web.Response(body=b"0123456789abcdef" * 16 * 1024 * 2, content_type="text/plain")

    async def endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b"z" * 16384
        try:
            while not self.release.is_set() and self.endless_bytes_sent < 256 * 1024 * 1024:
                await response.write(chunk)
                self.endless_bytes_sent += len(chunk)
        except ConnectionError:
            pass
        return response


class StaticResolver(AbstractResolver):
    """Names of our choosing resolve to the addresses we say; others go to the system."""

    def __init__(self, names: Mapping[str, list[str]]) -> None:
        self.names = dict(names)
        self.system: ThreadedResolver | None = None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self.names:
            self.system = self.system or ThreadedResolver()
            return await self.system.resolve(host, port, family)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.names[host]
        ]

    async def close(self) -> None:
        pass


NAMES = {
    "hooks.internal.test": ["127.0.0.1"],
    "metadata.internal.test": ["169.254.169.254"],
    "mixed.internal.test": ["10.0.0.1", "127.0.0.1"],
}

RealTransport = AiohttpTransport | Http11Transport
MakeTransport = Callable[..., RealTransport]
TRANSPORTS = {"aiohttp": AiohttpTransport, "http11": Http11Transport}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(params=sorted(TRANSPORTS))
async def make_transport(request: pytest.FixtureRequest) -> AsyncIterator[MakeTransport]:
    """Each test runs against both real transports: they promise the same."""
    made: list[RealTransport] = []
    kind = TRANSPORTS[request.param]

    def make(allow: tuple[str, ...] = ("127.0.0.0/8", "::1/128"), **kwargs: Any) -> RealTransport:
        transport = kind(
            policy=DestinationPolicy(allow),
            user_agent=USER_AGENT,
            resolver=StaticResolver(NAMES),
            **kwargs,
        )
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.close()


@pytest.fixture
async def listeners() -> AsyncIterator[list[CountingListener]]:
    """One answering listener on 127.0.0.1 and, when possible, one on ::1 at the same port."""
    v4 = await CountingListener().start("127.0.0.1")
    started = [v4]
    if HAS_IPV6_LOOPBACK:
        with contextlib.suppress(OSError):  # the same port may be taken on ::1
            started.append(await CountingListener().start("::1", v4.port))
    yield started
    for listener in started:
        await listener.stop()


async def test_receiver_gets_the_exact_body_and_headers(
    receiver: Receiver, make_transport: MakeTransport
) -> None:
    result = await make_transport().post(receiver.url("/echo"), BODY, HEADERS, 5)
    assert result.ok
    assert result.status_code == 200
    assert result.error is None
    assert result.error_detail is None
    assert result.response_body == "thanks"
    assert result.duration_ms > 0
    [seen] = receiver.requests
    assert seen["body"] == BODY
    headers = seen["headers"]
    for name, value in HEADERS.items():
        assert headers[name] == value
    assert headers["User-Agent"] == USER_AGENT
    assert headers["Accept-Encoding"] == "identity"  # compressed bodies are never inflated
    assert headers["Content-Length"] == str(len(BODY))
    assert "Cookie" not in headers


async def test_connections_are_kept_alive_between_posts(
    receiver: Receiver, make_transport: MakeTransport
) -> None:
    transport = make_transport()
    for _ in range(3):
        assert (await transport.post(receiver.url("/echo"), BODY, HEADERS, 5)).ok
    assert len({r["peer"] for r in receiver.requests}) == 1


async def test_endpoint_headers_can_override_the_user_agent(
    receiver: Receiver, make_transport: MakeTransport
) -> None:
    result = await make_transport().post(
        receiver.url("/echo"), b"{}", {"user-agent": "custom/1"}, 5
    )
    assert result.ok
    assert receiver.requests[0]["headers"]["User-Agent"] == "custom/1"


@pytest.mark.parametrize("code", [500, 503, 410, 404, 429])
async def test_error_status_is_reported_with_body_and_retry_after(
    receiver: Receiver, make_transport: MakeTransport, code: int
) -> None:
    result = await make_transport().post(receiver.url(f"/status/{code}"), BODY, HEADERS, 5)
    assert not result.ok
    assert result.status_code == code
    assert result.error is None
    assert result.response_body == f"failure body {code}"
    assert result.retry_after == "120"


async def test_redirect_is_a_failed_status_and_never_followed(
    receiver: Receiver, make_transport: MakeTransport
) -> None:
    target = await CountingListener().start("127.0.0.1")
    receiver.redirect_to = f"http://127.0.0.1:{target.port}/elsewhere"
    try:
        result = await make_transport().post(receiver.url("/redirect"), BODY, HEADERS, 5)
    finally:
        await target.stop()
    assert result.status_code == 302
    assert result.error is None
    assert not result.ok
    assert target.connections == 0


async def test_timeout_waiting_for_the_response(
    receiver: Receiver, make_transport: MakeTransport
) -> None:
    result = await make_transport().post(receiver.url("/slow"), BODY, HEADERS, 0.5)
    assert result.error == "timeout"
    assert result.status_code is None
    assert not result.ok
    assert result.duration_ms < 10_000  # bounded by the timeout, not by the receiver


async def test_timeout_while_reading_the_body_keeps_the_status_but_is_not_ok(
    receiver: Receiver, make_transport: MakeTransport
) -> None:
    result = await make_transport().post(receiver.url("/slow-body"), BODY, HEADERS, 0.5)
    assert result.error == "timeout"
    assert result.status_code == 200
    assert not result.ok
    assert result.duration_ms < 10_000


async def test_connection_reset_is_an_error_class(make_transport: MakeTransport) -> None:
    listener = await CountingListener(reset=True).start("127.0.0.1")
    try:
        result = await make_transport().post(f"http://127.0.0.1:{listener.port}/", BODY, HEADERS, 5)
    finally:
        await listener.stop()
    assert listener.connections == 1
    assert result.error == "connection_reset"
    assert result.status_code is None
    assert result.error_detail


async def test_connection_refused_is_a_connect_error(make_transport: MakeTransport) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await make_transport().post(
        f"http://127.0.0.1:{port}/?token={SECRET}", BODY, HEADERS, 5
    )
    assert result.error == "connect_error"
    assert result.status_code is None
    assert result.error_detail is not None
    assert f"127.0.0.1:{port}" in result.error_detail
    assert SECRET not in result.error_detail


async def test_unknown_name_is_a_dns_error(make_transport: MakeTransport) -> None:
    result = await make_transport().post("http://no-such-host.invalid/", BODY, HEADERS, 5)
    assert result.error == "dns_error"


async def test_large_response_body_is_truncated_to_64_kib(
    receiver: Receiver, make_transport: MakeTransport
) -> None:
    transport = make_transport()
    result = await transport.post(receiver.url("/big"), BODY, HEADERS, 5)
    assert result.ok
    assert result.response_body is not None
    assert len(result.response_body) == MAX_RESPONSE_BODY
    assert result.response_body.startswith("0123456789abcdef0123")
    # The cut connection is not reused half-read: the next post is answered correctly.
    again = await transport.post(receiver.url("/echo"), BODY, HEADERS, 5)
    assert again.ok
    assert again.response_body == "thanks"


async def test_endless_response_body_is_not_read_to_the_end(
    receiver: Receiver, make_transport: MakeTransport
) -> None:
    result = await make_transport().post(receiver.url("/endless"), BODY, HEADERS, 30)
    assert result.ok
    assert result.error is None
    assert result.response_body == "z" * MAX_RESPONSE_BODY
    await asyncio.sleep(0.2)
    assert receiver.endless_bytes_sent < 64 * 1024 * 1024  # stopped by the closed connection


def refused_targets(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/",
        f"http://0.0.0.0:{port}/",
        f"http://[::1]:{port}/",
        f"http://[::ffff:127.0.0.1]:{port}/",
        f"http://169.254.169.254:{port}/latest/meta-data/",
        f"http://100.64.0.1:{port}/",
        f"http://10.0.0.1:{port}/",
        f"http://192.168.1.1:{port}/",
        f"http://[64:ff9b::a9fe:a9fe]:{port}/",
        f"http://[fe80::1]:{port}/",
        f"http://localhost:{port}/",
        f"http://hooks.internal.test:{port}/",
        f"http://metadata.internal.test:{port}/",
        f"http://mixed.internal.test:{port}/",
    ]


async def test_private_destinations_are_refused_and_receive_nothing(
    listeners: list[CountingListener], make_transport: MakeTransport
) -> None:
    transport = make_transport(allow=())
    port = listeners[0].port
    for url in refused_targets(port):
        headers = {**HEADERS, "Authorization": f"Bearer {SECRET}"}
        result = await transport.post(f"{url}?token={SECRET}", BODY, headers, 2)
        assert result.error == "destination_refused", (url, result)
        assert result.status_code is None
        assert result.error_detail is not None
        assert SECRET not in result.error_detail
        assert result.duration_ms < 10_000
    await asyncio.sleep(0.05)
    for listener in listeners:
        assert listener.connections == 0
        assert listener.received == b""


async def test_refusal_names_the_reason(make_transport: MakeTransport) -> None:
    transport = make_transport(allow=())
    metadata = await transport.post("http://169.254.169.254/", BODY, HEADERS, 2)
    assert metadata.error_detail == "refused to connect to 169.254.169.254: cloud metadata"
    nat64 = await transport.post("http://[64:ff9b::a9fe:a9fe]/", BODY, HEADERS, 2)
    assert nat64.error_detail is not None
    assert "NAT64 cloud metadata" in nat64.error_detail
    named = await transport.post("http://metadata.internal.test/", BODY, HEADERS, 2)
    assert named.error_detail is not None
    assert "metadata.internal.test" in named.error_detail
    assert "169.254.169.254 (cloud metadata)" in named.error_detail


@pytest.mark.skipif(not HAS_127_0_0_2, reason="cannot bind 127.0.0.2 here")
async def test_redirect_from_an_allowed_listener_to_a_private_one_reaches_nothing(
    make_transport: MakeTransport,
) -> None:
    inner = await CountingListener().start("127.0.0.1")
    outer = Receiver(host="127.0.0.2")
    await outer.start()
    outer.redirect_to = f"http://127.0.0.1:{inner.port}/"
    transport = make_transport(allow=("127.0.0.2/32",))  # only the endpoint itself
    try:
        redirected = await transport.post(outer.url("/redirect"), BODY, HEADERS, 2)
        direct = await transport.post(outer.redirect_to, BODY, HEADERS, 2)
    finally:
        await outer.stop()
        await inner.stop()
    assert redirected.status_code == 302
    assert redirected.error is None
    assert direct.error == "destination_refused"
    assert inner.connections == 0
    assert inner.received == b""


async def test_allowed_loopback_listener_is_reached(
    listeners: list[CountingListener], make_transport: MakeTransport
) -> None:
    v4 = listeners[0]
    transport = make_transport(allow=("127.0.0.0/8",))
    for host in ("127.0.0.1", "localhost", "hooks.internal.test", "mixed.internal.test"):
        result = await transport.post(f"http://{host}:{v4.port}/", BODY, HEADERS, 5)
        assert result.status_code == 204, (host, result)
        assert result.ok
    assert v4.connections >= 1
    assert BODY in v4.received
    still_refused = await transport.post(f"http://10.0.0.1:{v4.port}/", BODY, HEADERS, 2)
    assert still_refused.error == "destination_refused"
    metadata = await transport.post("http://169.254.169.254/", BODY, HEADERS, 2)
    assert metadata.error == "destination_refused"


@pytest.mark.skipif(not HAS_IPV6_LOOPBACK, reason="no IPv6 loopback here")
async def test_allowed_ipv6_loopback_listener_is_reached(make_transport: MakeTransport) -> None:
    v6 = await CountingListener().start("::1")
    try:
        refused = await make_transport(allow=("127.0.0.0/8",)).post(
            f"http://[::1]:{v6.port}/", BODY, HEADERS, 2
        )
        assert refused.error == "destination_refused"
        assert v6.connections == 0
        result = await make_transport(allow=("::1/128",)).post(
            f"http://[::1]:{v6.port}/", BODY, HEADERS, 5
        )
    finally:
        await v6.stop()
    assert result.status_code == 204
    assert v6.connections == 1


@pytest.mark.parametrize("kind", sorted(TRANSPORTS))
def test_works_under_uvloop(kind: str) -> None:
    uvloop = pytest.importorskip("uvloop")
    transport = TRANSPORTS[kind]

    async def scenario() -> tuple[AttemptResult, AttemptResult, int]:
        listener = await CountingListener().start("127.0.0.1")
        url = f"http://127.0.0.1:{listener.port}/"
        try:
            async with transport(policy=DestinationPolicy([]), user_agent=USER_AGENT) as refusing:
                refused = await refusing.post(url, BODY, HEADERS, 2)
            async with transport(
                policy=DestinationPolicy(["127.0.0.0/8"]), user_agent=USER_AGENT
            ) as allowing:
                allowed = await allowing.post(url, BODY, HEADERS, 5)
        finally:
            await listener.stop()
        return refused, allowed, listener.connections

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        refused, allowed, connections = runner.run(scenario())
    assert refused.error == "destination_refused"
    assert allowed.status_code == 204
    assert connections == 1


async def test_recording_transport_scripts_answers_for_worker_tests() -> None:
    scripted: Transport = RecordingTransport(
        [respond(503, retry_after="5"), network_error("timeout")]
    )
    first = await scripted.post("https://a.example/", b"1", {"h": "v"}, 15)
    second = await scripted.post("https://a.example/", b"2", {}, 15)
    third = await scripted.post("https://b.example/", b"3", {}, 15)
    assert (first.status_code, first.retry_after, first.ok) == (503, "5", False)
    assert (second.error, second.status_code) == ("timeout", None)
    assert third.ok
    assert isinstance(scripted, RecordingTransport)
    assert [p.body for p in scripted.posts] == [b"1", b"2", b"3"]
    assert scripted.posts[0].headers == {"h": "v"}
    assert len(scripted.posts_to("https://a.example/")) == 2

    async def slow_for_b(post: Any) -> AttemptResult:
        if "b.example" in post.url:
            await asyncio.sleep(0)
            return respond(410)
        return respond(204)

    by_url = RecordingTransport(slow_for_b)
    assert (await by_url.post("https://b.example/", b"", {}, 1)).status_code == 410
    assert (await by_url.post("https://c.example/", b"", {}, 1)).status_code == 204
    await by_url.close()
    with pytest.raises(RuntimeError, match="closed"):
        await by_url.post("https://c.example/", b"", {}, 1)


# -- the lean transport on answers a well-behaved aiohttp receiver never gives ------------------


class ScriptedServer:
    """Reads each request whole, then writes the next scripted bytes (None: close, no answer)."""

    def __init__(self, answers: list[bytes | None]) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                self.requests.append(head + await reader.readexactly(length))
                answer = self.answers.pop(0)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def lean() -> Http11Transport:
    return Http11Transport(policy=DestinationPolicy(["127.0.0.0/8"]), user_agent=USER_AGENT)


CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
INTERIM = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
LATIN1 = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=latin-1\r\nContent-Length: 3\r\n\r\n"
    b"Z\xf6e"
)


@pytest.mark.parametrize(
    ("answer", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "hello"),
        (CHUNKED, "abcde"),
        (INTERIM, "ok"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", ""),
        (LATIN1, "Zöe"),
    ],
)
async def test_lean_transport_reads_every_framing(answer: bytes, body: str) -> None:
    async with ScriptedServer([answer, answer]) as server, lean() as transport:
        first = await transport.post(f"http://127.0.0.1:{server.port}/a?b=1", BODY, HEADERS, 5)
        second = await transport.post(f"http://127.0.0.1:{server.port}/a", BODY, HEADERS, 5)
    assert first.ok, first
    assert first.response_body == body
    assert second.ok, second
    assert server.connections == 1  # kept alive across both
    assert server.requests[0].startswith(b"POST /a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert server.requests[0].endswith(b"\r\n\r\n" + BODY)


async def test_lean_transport_reads_a_body_that_ends_with_the_connection() -> None:
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"
    async with ScriptedServer([answer, answer]) as server, lean() as transport:
        first = await transport.post(f"http://127.0.0.1:{server.port}/", BODY, HEADERS, 5)
        second = await transport.post(f"http://127.0.0.1:{server.port}/", BODY, HEADERS, 5)
    assert (first.status_code, first.error, first.response_body) == (200, None, "until the end")
    assert second.ok
    assert server.connections == 2  # a closed connection is never reused


async def test_lean_transport_reports_a_silent_close_and_a_broken_answer() -> None:
    async with ScriptedServer([None]) as server, lean() as transport:
        silent = await transport.post(f"http://127.0.0.1:{server.port}/", BODY, HEADERS, 5)
    assert (silent.error, silent.status_code) == ("connection_reset", None)
    async with ScriptedServer([b"HTTP/1.1 abc\r\n\r\n"]) as server, lean() as transport:
        broken = await transport.post(f"http://127.0.0.1:{server.port}/", BODY, HEADERS, 5)
    assert broken.error == "invalid_response"
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nshort"
    async with ScriptedServer([cut]) as server, lean() as transport:
        short = await transport.post(f"http://127.0.0.1:{server.port}/", BODY, HEADERS, 5)
    assert (short.error, short.status_code, short.ok) == ("invalid_response", 200, False)


async def test_lean_transport_sends_no_header_that_would_split_the_request() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    async with ScriptedServer([answer]) as server, lean() as transport:
        result = await transport.post(
            f"http://127.0.0.1:{server.port}/", BODY, {"x-a": "1\r\nx-b: 2"}, 5
        )
    assert result.error == "invalid_request"
    assert server.requests == []


async def test_lean_transport_names_a_failed_tls_handshake() -> None:
    async def plain_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")  # not TLS
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(plain_http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with lean() as transport:
            result = await transport.post(f"https://127.0.0.1:{port}/", BODY, HEADERS, 5)
    finally:
        server.close()
        await server.wait_closed()
    assert result.error == "tls_error", result
    assert result.status_code is None
    assert result.error_detail is not None
    assert result.error_detail.startswith(f"TLS handshake with 127.0.0.1:{port} failed")
