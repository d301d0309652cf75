"""What a delivery request carries: the body of a batch, and the headers of every request.

Headers are the endpoint's custom headers, its auth (bearer or basic), and a fresh Standard
Webhooks signature over the exact bytes sent. What this module must never do: change the
stored bytes of a message, or log a header value (credentials live in them).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

from hookhub.core import jsoncodec, signing
from hookhub.outbound.lanes import Job, Lane
from hookhub.records.outbound import Endpoint

__all__ = ["base_headers", "batch_body", "request_headers"]


def batch_body(jobs: list[Job]) -> tuple[str, bytes]:
    """The id and body of a batch: the same for the same members, on every attempt."""
    digest = hashlib.sha256(",".join(j.message_id for j in jobs).encode()).digest()
    batch_id = "msg_batch_" + base64.b32encode(digest[:15]).decode().lower()
    stamp = jsoncodec.isoformat(datetime.fromtimestamp(min(j.created_at for j in jobs), UTC))
    body = b"".join(
        [
            b'{"type":"batch","timestamp":"',
            stamp.encode(),
            b'","data":[',
            b",".join(j.payload for j in jobs),
            b"]}",
        ]
    )
    return batch_id, body


def base_headers(endpoint: Endpoint, user_agent: str) -> dict[str, str]:
    """What every request to ``endpoint`` carries, built once per configuration."""
    # Custom headers keep the letter case they were configured with: some receivers
    # compare names exactly. One of them replaces the default of the same name.
    headers = {"accept-encoding": "identity"}
    for name, value in endpoint.headers.items():
        headers.pop(name.lower(), None)
        headers[name] = value
    headers["content-type"] = "application/json"
    headers["user-agent"] = user_agent
    auth = endpoint.auth
    if auth is not None and auth["type"] == "bearer":
        headers["authorization"] = f"Bearer {auth['token']}"
    elif auth is not None and auth["type"] == "basic":
        pair = f"{auth['username']}:{auth['password']}".encode()
        headers["authorization"] = "Basic " + base64.b64encode(pair).decode()
    return headers


def request_headers(
    lane: Lane, msg_id: str, body: bytes, now: float, user_agent: str
) -> dict[str, str]:
    """The headers of one request to the lane's endpoint, signed at ``now``."""
    endpoint = lane.endpoint
    if lane.base_headers_of is not endpoint:
        lane.base_headers = base_headers(endpoint, user_agent)
        lane.base_headers_of = endpoint
    headers = lane.base_headers.copy()
    headers.update(signing.headers(endpoint.signing_secrets(now), msg_id, int(now), body))
    return headers
