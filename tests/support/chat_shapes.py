"""What Slack, Discord and Teams accept from an incoming webhook, as assertions.

From each service's documented format and limits: Slack incoming webhooks with Block Kit,
Discord's execute-webhook (message and embed limits), Teams workflows with an Adaptive Card.
"""

from __future__ import annotations

import re
from typing import Any

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def check_slack(body: Any) -> None:
    """Slack incoming webhooks: a non-empty ``text`` fallback and at most 50 Block Kit blocks."""
    assert isinstance(body["text"], str)
    assert body["text"].strip()
    blocks = body["blocks"]
    assert 1 <= len(blocks) <= 50
    for block in blocks:
        assert block["type"] in {"section", "context", "divider", "header"}
        if block["type"] == "section":
            assert block["text"]["type"] in {"mrkdwn", "plain_text"}
            assert 0 < len(block["text"]["text"]) <= 3000
            for field in block.get("fields", []):
                assert field["type"] in {"mrkdwn", "plain_text"}
                assert len(field["text"]) <= 2000
            assert len(block.get("fields", [])) <= 10
        if block["type"] == "context":
            assert 1 <= len(block["elements"]) <= 10


def check_discord(body: Any) -> None:
    """Discord execute-webhook: content <= 2000, <= 10 embeds within the embed limits."""
    assert isinstance(body["content"], str)
    assert len(body["content"]) <= 2000
    assert 1 <= len(body["embeds"]) <= 10
    for embed in body["embeds"]:
        total = len(embed.get("title", "")) + len(embed.get("description", ""))
        assert len(embed["title"]) <= 256
        assert len(embed["description"]) <= 4096
        assert len(embed["fields"]) <= 25
        for field in embed["fields"]:
            assert 0 < len(field["name"]) <= 256
            assert 0 < len(field["value"]) <= 1024
            total += len(field["name"]) + len(field["value"])
        assert total <= 6000
        assert ISO.match(embed["timestamp"])


def check_teams(body: Any) -> None:
    """Teams (workflows): a message whose attachment is an Adaptive Card 1.4."""
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    for element in card["body"]:
        assert element["type"] in {"TextBlock", "FactSet"}
        if element["type"] == "TextBlock":
            assert isinstance(element["text"], str)
        else:
            for fact in element["facts"]:
                assert set(fact) == {"title", "value"}
                assert isinstance(fact["title"], str)
                assert isinstance(fact["value"], str)
