"""JSON responses rendered with orjson, and the error body shape every failure uses."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse

from hookhub.core import jsoncodec
from hookhub.errors import HookhubError, RateLimited


class JSON(JSONResponse):
    """A JSONResponse (so that /openapi.json documents each route's response model), by orjson."""

    def render(self, content: Any) -> bytes:
        return jsoncodec.dumps(content)


class StoredJSON(JSONResponse):
    """A JSON response of data read back from the database: it was checked when it was
    written (:func:`jsoncodec.dumps` refuses NaN and infinities), so it is not walked again
    (the walk was a third of a 100-contact page's cost)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS)


def error_response(error: HookhubError) -> JSON:
    headers = None
    if isinstance(error, RateLimited):
        headers = {"Retry-After": str(max(1, round(error.retry_after)))}
    return JSON({"error": error.to_dict()}, status_code=error.status, headers=headers)
