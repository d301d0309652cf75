"""The baseline for the inbound benchmark: a bare Starlette handler that verifies Stripe's HMAC.

It does the least a webhook receiver must do for ``POST /in/{token}``: read the raw body, check
``Stripe-Signature`` (one ``t=``, a ``v1=`` HMAC-SHA256 of ``"{t}." + body`` keyed with the
secret, the timestamp within 300 s, compared in constant time) and answer 200, or 401. It stores
nothing and does not parse the body. Uvicorn runs with the settings ``hookhub serve`` uses
(uvloop, httptools, no access log).

    python bench/inbound_baseline_app.py --port 8098 --secret whsec_...
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TOLERANCE = 300.0


def verified(header: str | None, body: bytes, key: bytes, now: float) -> bool:
    if not header or len(header) > 8192:
        return False
    timestamp = ""
    signatures: list[str] = []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            timestamp = value
        elif name == "v1":
            signatures.append(value)
    if not timestamp.isascii() or not timestamp.isdigit() or not signatures:
        return False
    if abs(now - int(timestamp)) > TOLERANCE:
        return False
    expected = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    matched = False
    for signature in signatures:
        matched |= hmac.compare_digest(expected, signature)
    return matched


def build_app(secret: str) -> Starlette:
    key = secret.encode()

    async def receive(request: Request) -> Response:
        body = await request.body()
        if not verified(request.headers.get("stripe-signature"), body, key, time.time()):
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        return JSONResponse({"status": "ok"})

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/in/{token}", receive, methods=["POST"]),
            Route("/healthz", healthz),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8098)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args()
    uvicorn.run(
        build_app(args.secret),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
