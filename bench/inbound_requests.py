"""Pre-signed Stripe ``customer.created`` requests for the inbound benchmark, and their signing.

Bodies have the shape of tests/fixtures/stripe_customer_created.json, each with its own event id
(``evt_<tag><n>``), customer id and email (``<tag>-<n>@bench.example``), so that every request is
new to Hookhub's dedupe and creates its own contact. They are made once and signed again right
before each run, because Stripe's signature carries a timestamp that must stay inside the
receiver's 300 s window.

Every request carries two signatures over the same bytes, so the three servers get identical
requests: ``Stripe-Signature: t=<unix>,v1=<hex of HMAC("t." + body)>`` (Hookhub, the Starlette
baseline) and ``X-Signature: sha256=<hex of HMAC(body)>`` (Debian's ``webhook``, whose
``payload-hmac-sha256`` rule signs the body alone).

The file wrk reads (bench/inbound_replay.lua) has one request a line:
``<Stripe-Signature>\\t<X-Signature>\\t<body>``; bodies are compact JSON without tabs or newlines.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import REPO_DIR

from hookhub.inbound.providers.stripe import StripeProvider

FIXTURE = REPO_DIR / "tests" / "fixtures" / "stripe_customer_created.json"
EMAIL_DOMAIN = "bench.example"
_EVENT_ID = re.compile(r"^evt_(?P<tag>[a-z0-9]+)x(?P<n>\d+)$")


def customer_created_bodies(tag: str, count: int, *, start: int = 0) -> list[bytes]:
    """``count`` distinct customer.created events; ``tag`` (lower-case letters and digits)."""
    if not re.fullmatch(r"[a-z0-9]+", tag):
        raise ValueError("tag must be lower-case letters and digits")
    template = _body_template()
    created = int(time.time())
    return [
        template.format(
            evt=f"evt_{tag}x{n:09d}",
            cus=f"cus_{tag}x{n:09d}",
            req=f"req_{tag}x{n:09d}",
            email=email_for(tag, n),
            name=f"Jenny{n} Rosen",
            prefix=f"{n % 0xFFFFFFFF:08X}",
            key=uuid.uuid4(),
            created=created,
        ).encode()
        for n in range(start, start + count)
    ]


def _body_template() -> str:
    """The fixture as compact JSON, with ``{name}`` fields where each event differs."""
    event: dict[str, Any] = json.loads(FIXTURE.read_text())
    customer = event["data"]["object"]
    names = ("evt", "cus", "req", "email", "name", "prefix", "key", "created")
    marks = {name: f"@@{name}@@" for name in names}
    event["id"], event["created"] = marks["evt"], marks["created"]
    customer["id"], customer["created"] = marks["cus"], marks["created"]
    customer["email"], customer["name"] = marks["email"], marks["name"]
    customer["invoice_prefix"] = marks["prefix"]
    event["request"] = {"id": marks["req"], "idempotency_key": marks["key"]}
    text = json.dumps(event, separators=(",", ":")).replace("{", "{{").replace("}", "}}")
    text = text.replace(f'"{marks["created"]}"', "{created}")
    for name, mark in marks.items():
        text = text.replace(mark, "{" + name + "}")
    return text


def email_for(tag: str, n: int) -> str:
    return f"{tag}-{n}@{EMAIL_DOMAIN}"


def email_of_event(event_id: str) -> str | None:
    """The email a body with this event id carries (the benchmark's own numbering)."""
    match = _EVENT_ID.match(event_id)
    if match is None:
        return None
    return email_for(match["tag"], int(match["n"]))


def write_signed_requests(
    path: Path, bodies: Sequence[bytes], secret: str, *, now: float | None = None
) -> float:
    """Sign every body at ``now`` (default: this moment) into wrk's request file; returns now.

    The Stripe signature is computed here directly (it is the hot loop); the first request is
    checked against Hookhub's own Stripe adapter so that both agree on the scheme.
    """
    now = time.time() if now is None else now
    timestamp = str(int(now)).encode()
    key = secret.encode()
    sha256 = hashlib.sha256
    with path.open("wb") as out:
        for body in bodies:
            v1 = hmac.new(key, timestamp + b"." + body, sha256).hexdigest().encode()
            body_signature = hmac.new(key, body, sha256).hexdigest().encode()
            out.write(b"t=%s,v1=%s\tsha256=%s\t%s\n" % (timestamp, v1, body_signature, body))
    if bodies:
        expected = StripeProvider().sign(bodies[0], secret, now)["Stripe-Signature"]
        with path.open("rb") as written:
            first = written.readline().split(b"\t", 1)[0].decode()
        if first != expected:
            raise AssertionError(f"signature {first!r} differs from Hookhub's {expected!r}")
    return now


def webhook_hooks_json(path: Path, secret: str, hook_id: str = "stripe") -> None:
    """A hooks.json for Debian's ``webhook``: accept a POST whose X-Signature HMAC matches.

    ``execute-command`` is empty: webhook answers as soon as the rule matches and would run the
    command afterwards in a goroutine, which here fails at once (nothing is run or persisted).
    """
    hooks = [
        {
            "id": hook_id,
            "execute-command": "",
            "http-methods": ["POST"],
            "response-message": '{"status":"ok"}',
            "response-headers": [{"name": "Content-Type", "value": "application/json"}],
            "trigger-rule": {
                "match": {
                    "type": "payload-hmac-sha256",
                    "secret": secret,
                    "parameter": {"source": "header", "name": "X-Signature"},
                }
            },
        }
    ]
    path.write_text(json.dumps(hooks, indent=2))
