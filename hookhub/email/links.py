"""Click and open tracking in rendered HTML: links rewritten to signed redirects, a 1x1 pixel added.

Every ``<a href="http(s)://...">`` gets the URL ``click_url(index)``, where ``index`` is the
link's position in :attr:`TrackedHtml.links` (the same URL twice shares one index): the click
route redirects only to a URL in that list, so it can never be an open redirect. ``mailto:``,
``tel:``, in-page anchors and the unsubscribe URL are left alone. The
scanner is one regular expression over the tags (quotes respected), so any HTML goes through;
this module must never raise on odd input nor change anything but the href values it rewrites.
"""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Callable
from dataclasses import dataclass

# Not IGNORECASE: a literal "<" first lets the engine skip ahead to each tag.
_ANCHOR = re.compile(r"""<[aA]\s(?:[^>"']|"[^"]*"|'[^']*')*>""")
_HREF = re.compile(r"""(\shref\s*=\s*)(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))""", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_TRACKABLE = ("http://", "https://")
_PIXEL = (
    '<img src="{}" width="1" height="1" alt="" border="0"'
    ' style="height:1px!important;width:1px!important;border-width:0!important;'
    'margin:0!important;padding:0!important" />'
)


@dataclass(frozen=True, slots=True)
class TrackedHtml:
    html: str
    links: list[str]


def track_links(
    html: str,
    *,
    click_url: Callable[[int], str] | None,
    open_pixel_url: str | None,
    unsubscribe_url: str | None = None,
) -> TrackedHtml:
    """``html`` with its web links tracked (when ``click_url``) and an open pixel (when given)."""
    links: list[str] = []
    if click_url is not None:
        indexes: dict[str, int] = {}

        def rewrite_href(match: re.Match[str]) -> str:
            raw = match.group(2)
            if raw is None:
                raw = match.group(3) if match.group(3) is not None else match.group(4)
            url = htmllib.unescape(raw).strip() if "&" in raw else raw.strip()
            if not url[:8].lower().startswith(_TRACKABLE) or url == unsubscribe_url:
                return match.group(0)
            index = indexes.get(url)
            if index is None:
                index = indexes[url] = len(links)
                links.append(url)
            return f'{match.group(1)}"{htmllib.escape(click_url(index))}"'

        def rewrite_anchor(match: re.Match[str]) -> str:
            return _HREF.sub(rewrite_href, match.group(0), count=1)

        html = _ANCHOR.sub(rewrite_anchor, html)
    if open_pixel_url is not None:
        pixel = _PIXEL.format(htmllib.escape(open_pixel_url))
        ends = list(_BODY_END.finditer(html))
        if ends:
            at = ends[-1].start()
            html = html[:at] + pixel + html[at:]
        else:
            html += pixel
    return TrackedHtml(html=html, links=links)
