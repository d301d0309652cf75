"""JSON responses rendered with orjson, and the error body shape every failure uses."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from hookhub.core import jsoncodec
from hookhub.errors import HookhubError, RateLimited


class JSON(JSONResponse):
    """A JSONResponse (so that /openapi.json documents each route's response model), by orjson."""

    def render(self, content: Any) -> bytes:
        return jsoncodec.dumps(content)


def error_response(error: HookhubError) -> JSON:
    headers = None
    if isinstance(error, RateLimited):
        headers = {"Retry-After": str(max(1, round(error.retry_after)))}
    return JSON({"error": error.to_dict()}, status_code=error.status, headers=headers)
