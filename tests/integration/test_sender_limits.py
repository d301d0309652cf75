"""What a hostile endpoint's response head can make the lean sender read: bounded.

A raw server on loopback answers with a head past one of the limits (one huge header sent in
small pieces, too many headers, a head that never ends); each attempt fails as
``response_too_large`` with a clear detail, the connection is dropped, and the next attempt on
the same transport works.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from hookhub.core.urlguard import DestinationPolicy
from hookhub.outbound.http11 import Http11Transport
from hookhub.outbound.transport import MAX_HEADER_COUNT, MAX_HEADER_FIELD, MAX_RESPONSE_HEAD

HEADERS = {"content-type": "application/json"}
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

Answer = Callable[[asyncio.StreamWriter], Coroutine[Any, Any, None]]


@contextlib.asynccontextmanager
async def raw_server(answers: list[Answer]) -> AsyncIterator[tuple[int, list[_Counting]]]:
    """Answers the n-th request with ``answers[n]``; yields the port and what each answer wrote."""
    written: list[_Counting] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                answer = answers.pop(0)
                counting = _Counting(writer)
                written.append(counting)
                await answer(counting)  # type: ignore[arg-type]
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], written
    finally:
        server.close()
        await server.wait_closed()


class _Counting:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.count = 0

    def write(self, data: bytes) -> None:
        self.count += len(data)
        self.writer.write(data)

    async def drain(self) -> None:
        await self.writer.drain()


def pieces(head: bytes, size: int = 1024) -> Answer:
    """Writes ``head`` in small pieces until the client stops reading (at most 8 MiB)."""

    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(head)
        await writer.drain()
        for _ in range(8 * 1024 * 1024 // size):
            writer.write(b"a" * size)
            await writer.drain()
            await asyncio.sleep(0)

    return answer


def whole(response: bytes) -> Answer:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(response)
        await writer.drain()

    return answer


def lean() -> Http11Transport:
    return Http11Transport(policy=DestinationPolicy(["127.0.0.0/8"]), user_agent="hookhub/test")


HUGE_HEADER = pieces(b"HTTP/1.1 200 OK\r\nX-Big: ")


def many_headers(count: int) -> bytes:
    fields = b"".join(b"X-H%d: v\r\n" % i for i in range(count))
    return b"HTTP/1.1 200 OK\r\n" + fields + b"Content-Length: 2\r\n\r\nok"


def endless_small_headers() -> Answer:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for i in range(10_000):
            writer.write(b"X-%d: %s\r\n" % (i, b"v" * 1000))
            await writer.drain()
            await asyncio.sleep(0)

    return answer


@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        (HUGE_HEADER, "head over"),
        (
            whole(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (MAX_HEADER_FIELD + 1) + b"\r\n\r\n"),
            "header field over",
        ),
        (whole(many_headers(MAX_HEADER_COUNT + 1)), f"more than {MAX_HEADER_COUNT} header"),
        (endless_small_headers(), "head over"),
    ],
    ids=["one-endless-header", "one-long-header", "too-many-headers", "endless-head"],
)
async def test_an_oversized_head_fails_the_attempt_and_the_next_one_works(
    answer: Answer, detail: str
) -> None:
    async with raw_server([answer, whole(OK)]) as (port, written), lean() as transport:
        url = f"http://127.0.0.1:{port}/hook"
        refused = await transport.post(url, b"{}", HEADERS, 30)
        after = await transport.post(url, b"{}", HEADERS, 30)
    assert refused.error == "response_too_large", refused
    assert refused.status_code is None
    assert not refused.ok
    assert refused.error_detail is not None
    assert detail in refused.error_detail
    assert "/hook" not in refused.error_detail
    assert after.ok, after
    assert after.response_body == "ok"
    # The sender stopped reading near the limit: an endless head was not read to its 8 MiB.
    assert written[0].count < 8 * 1024 * 1024


async def test_a_head_within_the_limits_is_read() -> None:
    near = (
        b"HTTP/1.1 200 OK\r\nX-Big: "
        + b"a" * (MAX_HEADER_FIELD - 16)
        + b"\r\n"
        + b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADER_COUNT - 3))
        + b"Retry-After: 7\r\nContent-Length: 2\r\n\r\nok"
    )
    assert len(near) < MAX_RESPONSE_HEAD
    async with raw_server([whole(near)]) as (port, _), lean() as transport:
        result = await transport.post(f"http://127.0.0.1:{port}/", b"{}", HEADERS, 30)
    assert result.ok, result
    assert (result.response_body, result.retry_after) == ("ok", "7")
