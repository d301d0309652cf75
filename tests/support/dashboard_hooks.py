"""Helpers for the webhook pages' dashboard tests: submit a form as a browser would, read a page.

``form_post`` follows redirects like a browser after a form (so a test sees the page a user
lands on); ``htmx=True`` sends the headers htmx adds (the CSRF header instead of the field).
"""

from __future__ import annotations

import html
import re
from typing import Any

from httpx2 import Response


def form_post(client: Any, path: str, data: dict[str, Any], *, htmx: bool = False) -> Response:
    """POST ``data`` as a form to ``path`` with the session's CSRF token, redirects followed."""
    if htmx:
        headers = {"HX-Request": "true", "X-CSRF-Token": client.csrf_token}
        response: Response = client.post(path, data=data, headers=headers, follow_redirects=True)
        return response
    form = {**data, "csrf_token": client.csrf_token}
    answer: Response = client.post(path, data=form, follow_redirects=True)
    return answer


def text_of(response: Response) -> str:
    """The page's text as a reader sees it: tags dropped, entities decoded, spaces collapsed."""
    without_tags = re.sub(r"<[^>]+>", " ", response.text)
    return re.sub(r"\s+", " ", html.unescape(without_tags)).strip()
