"""Which opens and clicks a machine made: mail privacy proxies, image proxies, security scanners.

A hit is flagged ``proxy`` (DESIGN.md, "Email", tracking) when one of these says so, checked
in this order; the reason is kept on the email's timeline:

1. ``user_agent``: no User-Agent, or one naming a proxy or scanner (:data:`AGENT_MARKS`):
   Google's image proxy (``GoogleImageProxy``), Yahoo's (``YahooMailProxy``), Apple Mail
   Privacy Protection (its fetches say only ``Mozilla/5.0``), security gateways that follow
   links (Barracuda, Mimecast, Proofpoint, Microsoft Safe Links...), and HTTP libraries,
   crawlers and headless browsers.
2. ``too_soon``: the hit came within ``soon`` seconds (2) of the email being sent: no person
   opens a mail and clicks in it that fast, but a gateway scanning it on arrival does.
3. ``burst``: ``burst_links`` (3) or more different links of one email clicked within
   ``burst_window`` seconds (1): a scanner following every link. Every click of the burst from
   the third on is flagged; the first two were already applied, and stay as they were. This
   is remembered for the last ``memory`` emails (10,000) per process, so clicks of one
   email taken by two workers on PostgreSQL may escape it.

Pure: every time is handed in; nothing here reads a clock or the database.
"""

from __future__ import annotations

from collections import OrderedDict

AGENT_MARKS: tuple[str, ...] = (
    "googleimageproxy",
    "ggpht.com",
    "yahoomailproxy",
    "barracuda",
    "mimecast",
    "proofpoint",
    "ppops-",
    "messagelabs",
    "symantec",
    "trendmicro",
    "trend micro",
    "forcepoint",
    "ironport",
    "cisco",
    "fireeye",
    "sophos",
    "zscaler",
    "bitdefender",
    "safelinks",
    "urlscan",
    "bot",
    "crawler",
    "spider",
    "scanner",
    "preview",
    "headlesschrome",
    "phantomjs",
    "curl/",
    "wget/",
    "python-",
    "python/",
    "go-http-client",
    "java/",
    "okhttp",
    "axios/",
    "node-fetch",
    "libwww",
    "httpclient",
)
APPLE_PRIVACY_AGENT = "mozilla/5.0"
"""What Apple's Mail Privacy Protection fetches say, and nothing more."""


def agent_reason(user_agent: str | None) -> str | None:
    """``"user_agent"`` when the User-Agent is missing or names a proxy or scanner."""
    if not user_agent or not user_agent.strip():
        return "user_agent"
    agent = user_agent.strip().lower()
    if agent == APPLE_PRIVACY_AGENT:
        return "user_agent"
    for mark in AGENT_MARKS:
        if mark in agent:
            return "user_agent"
    return None


class ProxyJudge:
    """Says whether a hit looks machine-made, remembering recent clicks for bursts."""

    def __init__(
        self,
        *,
        soon: float = 2.0,
        burst_links: int = 3,
        burst_window: float = 1.0,
        memory: int = 10_000,
    ) -> None:
        self.soon = soon
        self.burst_links = burst_links
        self.burst_window = burst_window
        self.memory = memory
        self._clicks: OrderedDict[int, list[tuple[float, int]]] = OrderedDict()

    def reason(
        self,
        kind: str,
        email_id: int,
        *,
        at: float,
        sent_at: float | None,
        user_agent: str | None,
        link: int | None = None,
    ) -> str | None:
        """Why the hit (``kind`` ``o`` or ``c``, at ``at``) is a machine's, or None."""
        burst = self._note_click(email_id, at, link) if kind == "c" else False
        found = agent_reason(user_agent)
        if found is not None:
            return found
        if sent_at is not None and at - sent_at < self.soon:
            return "too_soon"
        return "burst" if burst else None

    def _note_click(self, email_id: int, at: float, link: int | None) -> bool:
        """Remember the click; whether it makes a burst of different links."""
        recent = [(t, n) for t, n in self._clicks.get(email_id, ()) if at - t <= self.burst_window]
        recent.append((at, link if link is not None else -1))
        self._clicks[email_id] = recent
        self._clicks.move_to_end(email_id)
        while len(self._clicks) > self.memory:
            self._clicks.popitem(last=False)
        return len({n for _, n in recent}) >= self.burst_links
