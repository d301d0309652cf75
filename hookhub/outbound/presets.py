"""Transform presets: a message reshaped for what one kind of receiver accepts as it is.

Each preset is a plain function from the message (``type``, ``timestamp``, ``data``,
``origin``) to a JSON-ready object, following the receiver's documented format: Slack's
incoming webhooks (``text`` plus Block Kit ``blocks``), Discord's execute-webhook (``content``
plus one embed, within Discord's limits), Teams workflows (a message carrying an Adaptive Card
1.4), a flat row for a Google Apps Script ``doPost`` that calls ``appendRow``, and Brevo's own
marketing webhook shape, so a receiver written for Brevo works unchanged.

What this module must never do: produce a body over a receiver's documented limits (texts are
cut with an ellipsis), or fail on a message's data (unknown shapes render what they have).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

__all__ = ["PRESETS", "summary"]

Message = dict[str, Any]

# Slack: a section's text holds 3000 characters, a message 50 blocks, a section 10 fields.
SLACK_SECTION_TEXT = 3000
SLACK_FIELDS = 10
SLACK_FIELD_TEXT = 2000
# Discord: content 2000, embed title 256, description 4096, 25 fields of 256/1024, 6000 in all.
DISCORD_CONTENT = 2000
DISCORD_TITLE = 256
DISCORD_DESCRIPTION = 4096
DISCORD_FIELDS = 25
DISCORD_FIELD_NAME = 256
DISCORD_FIELD_VALUE = 1024
DISCORD_EMBED_TOTAL = 6000
MAX_FACTS = 20
_SKIPPED = frozenset({"attributes", "changes", "event_properties", "tags", "list_ids"})


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _scalar(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _who(data: dict[str, Any]) -> str:
    email = data.get("email")
    if email:
        return str(email)
    contact = data.get("contact_id")
    return f"contact {contact}" if contact is not None else ""


def summary(message: Message) -> str:
    """One readable line: what happened, to whom."""
    kind = str(message.get("type") or "message")
    data = _data(message)
    who = _who(data)
    detail = {
        "list.contact_added": lambda: f"joined {data.get('list_name') or data.get('list_id')}",
        "list.contact_removed": lambda: f"left {data.get('list_name') or data.get('list_id')}",
        "list.deleted": lambda: f"list {data.get('list_name') or data.get('list_id')} deleted",
        "contact.updated": lambda: "changed " + ", ".join(map(str, data.get("changes") or {})),
        "event.tracked": lambda: f"event {data.get('event_name')}",
        "email.clicked": lambda: f"clicked {data.get('url')}",
        "email.bounced": lambda: f"{data.get('bounce_type') or ''} bounce: {data.get('reason')}",
        "automation.entered": lambda: f"entered {data.get('automation_name')}",
        "automation.exited": lambda: f"left {data.get('automation_name')}",
    }.get(kind)
    parts = [kind]
    if who:
        parts.append(who)
    if detail is not None:
        with contextlib.suppress(Exception):  # a shape we did not expect: stay short
            parts.append(detail())
    elif kind.startswith("email.") and data.get("subject"):
        parts.append(f"“{data['subject']}”")
    return " · ".join(p for p in parts if p)


def _data(message: Message) -> dict[str, Any]:
    data = message.get("data")
    return data if isinstance(data, dict) else {}


def _facts(message: Message) -> list[tuple[str, str]]:
    """The data's scalar fields, then the changed attributes (old → new), as name/value."""
    data = _data(message)
    facts = [
        (str(k), _scalar(v))
        for k, v in data.items()
        if k not in _SKIPPED and not isinstance(v, dict | list)
    ]
    changes = data.get("changes")
    if isinstance(changes, dict):
        for name, change in changes.items():
            if isinstance(change, dict):
                old, new = _scalar(change.get("old")), _scalar(change.get("new"))
                facts.append((str(name), f"{old} → {new}"))
    return facts[:MAX_FACTS]


def slack(message: Message) -> dict[str, Any]:
    text = summary(message)
    fields = [
        {"type": "mrkdwn", "text": _cut(f"*{name}*\n{value}", SLACK_FIELD_TEXT)}
        for name, value in _facts(message)[:SLACK_FIELDS]
    ]
    section: dict[str, Any] = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": _cut(f"*{message.get('type')}*\n{text}", 3000)},
    }
    if fields:
        section["fields"] = fields
    context = {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": f"Hookhub · {message.get('timestamp')}"}],
    }
    return {"text": _cut(text, SLACK_SECTION_TEXT), "blocks": [section, context]}


def discord(message: Message) -> dict[str, Any]:
    text = summary(message)
    title = _cut(str(message.get("type") or "message"), DISCORD_TITLE)
    description = _cut(text, DISCORD_DESCRIPTION)
    budget = DISCORD_EMBED_TOTAL - len(title) - len(description)
    fields = []
    for name, value in _facts(message)[:DISCORD_FIELDS]:
        name, value = _cut(name, DISCORD_FIELD_NAME), _cut(value, DISCORD_FIELD_VALUE)
        budget -= len(name) + len(value)
        if budget < 0:
            break
        fields.append({"name": name, "value": value, "inline": True})
    embed: dict[str, Any] = {"title": title, "description": description, "fields": fields}
    if message.get("timestamp"):
        embed["timestamp"] = message["timestamp"]
    return {"content": _cut(text, DISCORD_CONTENT), "embeds": [embed]}


def teams(message: Message) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": str(message.get("type") or "message"),
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
        },
        {"type": "TextBlock", "text": summary(message), "wrap": True},
    ]
    facts = [{"title": name, "value": value} for name, value in _facts(message)]
    if facts:
        body.append({"type": "FactSet", "facts": facts})
    body.append(
        {
            "type": "TextBlock",
            "text": str(message.get("timestamp") or ""),
            "isSubtle": True,
            "size": "Small",
            "wrap": True,
        }
    )
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def _flatten(prefix: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, into)
    elif isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            into[prefix] = ", ".join(_scalar(v) for v in value)
    else:
        into[prefix] = value


def google_sheets(message: Message) -> dict[str, Any]:
    data = _data(message)
    row: dict[str, Any] = {
        "timestamp": message.get("timestamp"),
        "type": message.get("type"),
        "contact_id": data.get("contact_id"),
        "email": data.get("email"),
    }
    flat: dict[str, Any] = {}
    _flatten("", data, flat)
    for key, value in flat.items():
        row.setdefault(key, value)
    return row


# Our types as Brevo's marketing webhook event names, where Brevo has one.
BREVO_EVENTS = {
    "email.sent": "request",
    "email.delivered": "delivered",
    "email.opened": "opened",
    "email.clicked": "click",
    "email.deferred": "deferred",
    "email.complained": "spam",
    "email.failed": "error",
    "contact.unsubscribed": "unsubscribed",
    "contact.updated": "contact_updated",
    "contact.deleted": "contact_deleted",
    "list.contact_added": "list_addition",
}


def _brevo_event(message: Message) -> str:
    kind = str(message.get("type") or "")
    if kind == "email.bounced":
        return "soft_bounce" if _data(message).get("bounce_type") == "soft" else "hard_bounce"
    return BREVO_EVENTS.get(kind, kind)


def brevo(message: Message) -> dict[str, Any]:
    data = _data(message)
    stamp = str(message.get("timestamp") or "")
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        date, ts = moment.strftime("%Y-%m-%d %H:%M:%S"), int(moment.timestamp())
    except ValueError:
        date, ts = stamp, None
    tags = data.get("tags") if isinstance(data.get("tags"), list) else []
    body: dict[str, Any] = {
        "event": _brevo_event(message),
        "email": data.get("email"),
        "id": data.get("contact_id"),
        "date": date,
        "ts": ts,
        "ts_event": ts,
        "tag": tags[0] if tags else "",
        "tags": tags,
    }
    optional = {
        "message-id": data.get("message_id"),
        "subject": data.get("subject"),
        "camp_id": data.get("campaign_id"),
        "link": data.get("url"),
        "reason": data.get("reason"),
        "list_id": [data["list_id"]] if data.get("list_id") is not None else None,
        "date_event": date if "campaign_id" in data else None,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


PRESETS: dict[str, Callable[[Message], dict[str, Any]]] = {
    "slack": slack,
    "discord": discord,
    "teams": teams,
    "google_sheets": google_sheets,
    "brevo": brevo,
}
