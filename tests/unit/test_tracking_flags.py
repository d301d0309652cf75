"""Which opens and clicks are a machine's (``hookhub.core.tracking_flags``): by User-Agent, by
timing after the send, and by bursts of different links."""

from __future__ import annotations

import pytest

from hookhub.core.tracking_flags import ProxyJudge, agent_reason

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
IPHONE_MAIL = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"  # noqa: E501


@pytest.mark.parametrize(
    "agent",
    [
        None,
        "",
        "  ",
        "Mozilla/5.0",
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
        "Barracuda Sentinel (EE)",
        "Mozilla/5.0 (compatible; Mimecast-URL-Protect)",
        "python-requests/2.31.0",
        "curl/8.4.0",
        "Go-http-client/1.1",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/119.0 Safari/537.36",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    ],
)
def test_machine_agents(agent: str | None) -> None:
    assert agent_reason(agent) == "user_agent"


@pytest.mark.parametrize(
    "agent",
    [FIREFOX, IPHONE_MAIL, "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029)"],
)
def test_people_agents(agent: str) -> None:
    assert agent_reason(agent) is None


def test_a_hit_right_after_sending_is_a_scanner() -> None:
    judge = ProxyJudge()
    assert judge.reason("o", 1, at=101.5, sent_at=100.0, user_agent=FIREFOX) == "too_soon"
    assert judge.reason("o", 1, at=102.5, sent_at=100.0, user_agent=FIREFOX) is None
    assert judge.reason("o", 1, at=102.5, sent_at=None, user_agent=FIREFOX) is None


def test_three_links_within_a_second_are_a_burst() -> None:
    judge = ProxyJudge()
    reasons = [
        judge.reason("c", 7, at=1000.0 + n * 0.2, sent_at=0.0, user_agent=FIREFOX, link=n)
        for n in range(4)
    ]
    assert reasons == [None, None, "burst", "burst"]
    # The same link again and again, or links seconds apart, is a person.
    same = [
        judge.reason("c", 8, at=1000.0 + n * 0.1, sent_at=0.0, user_agent=FIREFOX, link=0)
        for n in range(5)
    ]
    assert same == [None] * 5
    apart = [
        judge.reason("c", 9, at=1000.0 + n * 2, sent_at=0.0, user_agent=FIREFOX, link=n)
        for n in range(5)
    ]
    assert apart == [None] * 5


def test_memory_is_bounded() -> None:
    judge = ProxyJudge(memory=10)
    for email_id in range(100):
        judge.reason("c", email_id, at=1000.0, sent_at=0.0, user_agent=FIREFOX, link=0)
    assert len(judge._clicks) == 10
