"""A local webhook receiver for developers, behind ``hookhub listen``.

Point an outbound endpoint at it (``http://127.0.0.1:9000/anything``) and it prints each POST
it gets: method, path, the Standard Webhooks ``webhook-id``/``webhook-timestamp`` headers, the
body (pretty JSON), and, when given the endpoint's secret(s), whether the signature verifies
(with :func:`hookhub.core.signing.verify`, like a real receiver would).

Answers: 200 for every webhook, even one whose signature fails, so the sender does not retry
while you look; the console says ``signature: INVALID`` and why. With ``strict=True`` a failed
signature is answered 401, as a real receiver would, to exercise the sender's retries.
It must never be used as a production receiver: it stores nothing and acts on nothing, and it
must never render what it receives as console markup.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from rich.console import Console, Group, RenderableType
from rich.json import JSON
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from hookhub.core import signing
from hookhub.errors import SignatureInvalid

__all__ = [
    "EventCallback",
    "ReceivedWebhook",
    "create_app",
    "listen",
    "print_webhook",
    "run_listener",
]

MAX_BODY = 1024 * 1024
# Bodies that are not JSON are shown as text up to this many characters.
MAX_TEXT_SHOWN = 10_000


@dataclass(frozen=True, slots=True)
class ReceivedWebhook:
    """One request as the listener saw it, and what it made of its signature."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names, first value of each
    body: bytes
    received_at: float
    signature: str  # "valid", "invalid" or "unchecked" (no secret given)
    signature_error: str | None = None

    @property
    def webhook_id(self) -> str | None:
        return self.headers.get("webhook-id")

    @property
    def webhook_timestamp(self) -> str | None:
        return self.headers.get("webhook-timestamp")

    def payload(self) -> Any:
        """The JSON body, or None when the body is not JSON."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None


EventCallback = Callable[[ReceivedWebhook], Awaitable[None] | None]


def create_app(
    secrets: Sequence[str],
    on_event: EventCallback,
    *,
    strict: bool = False,
    clock: Callable[[], float] = time.time,
    max_body: int = MAX_BODY,
) -> web.Application:
    """The listener as an aiohttp application: every POST, on any path, goes to ``on_event``."""
    keys = list(secrets)
    for secret in keys:
        signing.parse_secret(secret)  # a mistyped secret fails now, not as INVALID on every call

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            headers.setdefault(name.lower(), value)
        now = clock()
        status, error = "unchecked", None
        if keys:
            try:
                signing.verify(keys, headers, body, now)
                status = "valid"
            except SignatureInvalid as exc:
                status, error = "invalid", exc.message
        webhook = ReceivedWebhook(
            method=request.method,
            path=request.path_qs,
            headers=headers,
            body=body,
            received_at=now,
            signature=status,
            signature_error=error,
        )
        outcome = on_event(webhook)
        if inspect.isawaitable(outcome):
            await outcome
        if strict and status == "invalid":
            return web.json_response({"received": False, "error": error}, status=401)
        return web.json_response({"received": True, "signature": status})

    app = web.Application(client_max_size=max_body)
    app.router.add_post("/{path:.*}", receive)
    return app


def print_webhook(console: Console, webhook: ReceivedWebhook) -> None:
    """Render one received webhook. Everything shown is plain text, never markup."""
    moment = datetime.fromtimestamp(webhook.received_at, UTC).strftime("%H:%M:%S")
    title = Text.assemble((webhook.method, "bold"), " ", webhook.path, ("  " + moment, "dim"))
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column()
    facts.add_row("webhook-id", Text(webhook.webhook_id or "(none)"))
    facts.add_row("webhook-timestamp", _timestamp(webhook))
    facts.add_row("signature", _signature(webhook))
    console.print(Rule(title, align="left"))
    console.print(Group(facts, _body(webhook)))


async def run_listener(
    host: str,
    port: int,
    secrets: Sequence[str],
    on_event: EventCallback | None = None,
    *,
    console: Console | None = None,
    strict: bool = False,
    started: asyncio.Event | None = None,
) -> None:
    """Serve until cancelled; without ``on_event`` each webhook is printed to ``console``."""
    out = console or Console()

    def show(webhook: ReceivedWebhook) -> None:
        print_webhook(out, webhook)

    runner = web.AppRunner(create_app(secrets, on_event or show, strict=strict))
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        checking = "verifying signatures" if secrets else "no secret: signatures not checked"
        out.print(Text(f"Listening on http://{host}:{port}/ ({checking}); Ctrl-C to stop."))
        if started is not None:
            started.set()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def listen(
    host: str, port: int, secrets: Sequence[str], console: Console, *, strict: bool = False
) -> None:
    """Run the listener in the foreground until interrupted (Ctrl-C)."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_listener(host, port, secrets, console=console, strict=strict))
    console.print("Stopped.")


def _timestamp(webhook: ReceivedWebhook) -> Text:
    raw = webhook.webhook_timestamp
    if raw is None:
        return Text("(none)")
    try:
        sent = int(raw)
        when = datetime.fromtimestamp(sent, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):
        return Text(raw)
    age = webhook.received_at - sent
    relative = f"{age:.0f} s ago" if age >= 0 else f"{-age:.0f} s in the future"
    return Text.assemble(raw, (f"  {when}, {relative}", "dim"))


def _signature(webhook: ReceivedWebhook) -> Text:
    if webhook.signature == "valid":
        return Text("valid", style="bold green")
    if webhook.signature == "invalid":
        return Text.assemble(("INVALID", "bold red"), f" ({webhook.signature_error})")
    return Text("not checked (no secret given)", style="yellow")


def _body(webhook: ReceivedWebhook) -> RenderableType:
    if not webhook.body:
        return Text("(empty body)", style="dim")
    payload = webhook.payload()
    if payload is not None or webhook.body.strip() == b"null":
        with contextlib.suppress(RecursionError, ValueError):  # absurdly deep JSON: show as text
            return JSON.from_data(payload, indent=2)
    text = webhook.body.decode("utf-8", "replace")
    shown = text[:MAX_TEXT_SHOWN]
    more = f"\n… {len(text) - len(shown)} more characters" if len(text) > len(shown) else ""
    return Text(shown + more)
