"""The bytes the public tracking routes answer with: the open pixel, the click redirect, the
unsubscribe page and its confirmation, and the refusals.

Each answer is ``(status, headers, body)`` with every header but ``content-length`` (the HTTP
layer adds it, and leaves the body out for HEAD). The pages are small, plain HTML: readable
without scripts or styles, labelled for screen readers, forbidden to frame or to leak their URL
(the token is a capability) in a Referer. Nothing here may put unescaped client or stored text
into a page or a header.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from urllib.parse import quote

from hookhub.core import jsoncodec

Header = tuple[bytes, bytes]
Answer = tuple[int, Sequence[Header], bytes]

PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
"""A 1x1 transparent GIF."""

NO_STORE = (b"cache-control", b"no-store, no-cache, must-revalidate, private")
_PAGE_HEADERS: tuple[Header, ...] = (
    (b"content-type", b"text/html; charset=utf-8"),
    NO_STORE,
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        b"frame-ancestors 'none'",
    ),
)
_JSON = (b"content-type", b"application/json")

OPENED: Answer = (
    200,
    ((b"content-type", b"image/gif"), NO_STORE, (b"pragma", b"no-cache"), (b"expires", b"0")),
    PIXEL,
)


def error_answer(status: int, code: str, message: str, *extra: Header) -> Answer:
    body = {"error": {"code": code, "message": message, "details": None}}
    return status, (_JSON, NO_STORE, *extra), jsoncodec.dumps(body)


NOT_FOUND = error_answer(404, "not_found", "No such tracking link.")
TOO_LARGE = error_answer(413, "payload_too_large", "The body is too large.")
UNAVAILABLE = error_answer(
    503, "unavailable", "This could not be recorded; retry shortly.", (b"retry-after", b"5")
)


def method_not_allowed(allowed: bytes) -> Answer:
    return error_answer(
        405, "method_not_allowed", "This method is not allowed here.", (b"allow", allowed)
    )


_SAFE_IN_LOCATION = "!#$%&'()*+,-./:;=?@[]~_"


def redirect(url: str) -> Answer | None:
    """The 302 to ``url``, or None when it is no web address to send anyone to.

    Links come from the email's HTML, unescaped: anything outside printable ASCII (spaces,
    control characters, non-ASCII) is percent-encoded, so no header can be injected.
    """
    scheme = url[:8].lower()
    if not (scheme.startswith("http://") or scheme.startswith("https://")):
        return None
    location = quote(url, safe=_SAFE_IN_LOCATION)
    return 302, ((b"location", location.encode("ascii")), NO_STORE), b""


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;\
line-height:1.5;color:#1a1a1a}}button{{font:inherit;padding:.5rem 1.25rem;cursor:pointer}}</style>
</head>
<body>
<main>
<h1>{title}</h1>
{content}
</main>
</body>
</html>
"""


def _page(title: str, content: str) -> Answer:
    return 200, _PAGE_HEADERS, _PAGE.format(title=title, content=content).encode()


def unsubscribe_page(address: str) -> Answer:
    """The page an unsubscribe link opens: it says whom, and asks to confirm (a link checker
    that follows the link unsubscribes no one)."""
    who = html.escape(address)
    return _page(
        "Unsubscribe",
        f"<p>Stop sending these emails to <strong>{who}</strong>?</p>\n"
        '<form method="post">\n'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">\n'
        f'<button type="submit" aria-label="Unsubscribe {who}">Unsubscribe</button>\n'
        "</form>",
    )


def unsubscribed_page(address: str) -> Answer:
    who = html.escape(address)
    return _page(
        "Unsubscribed",
        f'<p role="status"><strong>{who}</strong> is unsubscribed and will get no more of '
        "these emails.</p>",
    )
