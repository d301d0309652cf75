"""Pure ASGI middleware: request size limit and request metrics.

The size limit answers 413 from the Content-Length header alone when it can, and otherwise
stops reading as soon as the limit is passed: an oversize body is never buffered whole.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hookhub.api.responses import error_response
from hookhub.errors import BadRequest, PayloadTooLarge
from hookhub.metrics import Metrics


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int, skip_prefixes: tuple[str, ...] = ()):
        self.app = app
        self.max_bytes = max_bytes
        self.skip_prefixes = skip_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.skip_prefixes):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await error_response(PayloadTooLarge(details={"limit": self.max_bytes}))(
                scope, receive, send
            )
            return
        if declared is None and scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await error_response(PayloadTooLarge(details={"limit": self.max_bytes}))(
                    scope, receive, send
                )
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if declared is not None and declared != len(body):
            await error_response(BadRequest("Content-Length does not match the body."))(
                scope, receive, send
            )
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._templates: dict[int, str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            template = self._template(scope)
            self.metrics.http_requests.labels(template, scope["method"], str(status)).inc()
            self.metrics.http_latency.labels(template).observe(time.perf_counter() - started)

    def _template(self, scope: Scope) -> str:
        """The full path template of the matched route (``/api/v1/contacts/{ref}``).

        A route included through a router knows only its path inside that router
        (``/contacts/{ref}``), so the full templates are looked up in the app's route table.
        """
        route: Any = scope.get("route")
        if route is None:
            return "unmatched"
        template = self._templates.get(id(route))
        if template is None and "app" in scope:
            for context in iter_route_contexts(scope["app"].routes):
                self._templates.setdefault(id(context.original_route), context.path or "")
            template = self._templates.get(id(route))
        return template or getattr(route, "path", None) or "unmatched"
