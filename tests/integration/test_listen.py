"""``hookhub listen``: the developer's local receiver, over real HTTP on a loopback port.

It answers every webhook, prints it, and says whether its Standard Webhooks signature verifies.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from rich.console import Console

from hookhub.core import signing
from hookhub.errors import ValidationFailed
from hookhub.outbound.listen import ReceivedWebhook, create_app, run_listener

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="
BODY = (
    b'{"type":"contact.created","timestamp":"2026-01-02T03:04:05.000Z",'
    b'"data":{"contact_id":42,"email":"ada@example.com"}}'
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Listener:
    url: str
    output: io.StringIO
    session: aiohttp.ClientSession

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        async with self.session.post(self.url + path, data=body, headers=headers) as response:
            return response.status, await response.json()

    @property
    def printed(self) -> str:
        return self.output.getvalue()


StartListener = Callable[..., Awaitable[Listener]]


@pytest.fixture
async def start_listener() -> AsyncIterator[StartListener]:
    tasks: list[asyncio.Task[None]] = []
    session = aiohttp.ClientSession()

    async def start(secrets: list[str], **kwargs: Any) -> Listener:
        port = free_port()
        output = io.StringIO()
        console = Console(file=output, width=200, color_system=None, force_terminal=False)
        started = asyncio.Event()
        task = asyncio.create_task(
            run_listener("127.0.0.1", port, secrets, console=console, started=started, **kwargs)
        )
        tasks.append(task)
        await asyncio.wait_for(started.wait(), timeout=5)
        return Listener(f"http://127.0.0.1:{port}", output, session)

    yield start
    await session.close()
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def signed(secret: str = SECRET, msg_id: str = "msg_good", body: bytes = BODY) -> dict[str, str]:
    headers = signing.headers([secret], msg_id, int(time.time()), body)
    return {**headers, "Content-Type": "application/json"}


async def test_prints_a_signed_webhook_and_flags_a_badly_signed_one(
    start_listener: StartListener,
) -> None:
    listener = await start_listener([SECRET])
    assert "Listening on http://127.0.0.1:" in listener.printed

    good = await listener.post("/hooks/contacts", BODY, signed())
    assert good == (200, {"received": True, "signature": "valid"})
    bad_headers = signed(secret=OTHER_SECRET, msg_id="msg_bad")
    bad = await listener.post("/other/path?x=1", BODY, bad_headers)
    assert bad == (200, {"received": True, "signature": "invalid"})

    printed = listener.printed
    first, second = printed.split("POST /hooks/contacts")[1].split("POST /other/path?x=1")
    assert "msg_good" in first
    assert f"webhook-timestamp  {signed()['webhook-timestamp'][:6]}" in first
    assert "signature          valid" in first
    assert '"email": "ada@example.com"' in first  # pretty-printed, one key per line
    assert '"contact_id": 42,' in first
    assert "msg_bad" in second
    assert "signature          INVALID (No signature in webhook-signature matches" in second


async def test_strict_mode_answers_401_to_a_bad_signature(start_listener: StartListener) -> None:
    listener = await start_listener([OTHER_SECRET, SECRET], strict=True)
    assert (await listener.post("/", BODY, signed()))[0] == 200
    stale = {**signed(), "webhook-timestamp": str(int(time.time()) - 3600)}
    status, answer = await listener.post("/", BODY, stale)
    assert status == 401
    assert "too old" in answer["error"]
    assert "INVALID (The webhook-timestamp timestamp is too old" in listener.printed


async def test_without_secret_nothing_is_checked_and_text_bodies_are_shown(
    start_listener: StartListener,
) -> None:
    listener = await start_listener([])
    status, answer = await listener.post("/form", b"a=1&b=[red]2[/red]", {"webhook-id": "[b]x"})
    assert (status, answer) == (200, {"received": True, "signature": "unchecked"})
    printed = listener.printed
    assert "signatures not checked" in printed
    assert "not checked (no secret given)" in printed
    # What a sender puts in headers or bodies is shown as it is, never read as console markup.
    assert "a=1&b=[red]2[/red]" in printed
    assert "[b]x" in printed
    assert "webhook-timestamp  (none)" in printed


async def test_callback_gets_each_webhook_and_only_post_is_accepted(
    start_listener: StartListener,
) -> None:
    received: list[ReceivedWebhook] = []

    async def collect(webhook: ReceivedWebhook) -> None:
        received.append(webhook)

    listener = await start_listener([SECRET], on_event=collect)
    await listener.post("/a", BODY, signed())
    async with listener.session.get(listener.url + "/a") as response:
        assert response.status == 405
    [webhook] = received
    assert (webhook.method, webhook.path, webhook.signature) == ("POST", "/a", "valid")
    assert webhook.webhook_id == "msg_good"
    assert webhook.body == BODY
    assert webhook.payload()["data"]["contact_id"] == 42
    assert listener.printed.count("POST") == 0  # the callback replaces the console output


def test_a_mistyped_secret_fails_at_start() -> None:
    with pytest.raises(ValidationFailed, match="secret"):
        create_app(["whsec_not base64!"], lambda webhook: None)
