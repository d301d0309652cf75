"""A fast webhook receiver for the delivery throughput benchmark (its own process, on loopback).

Answers every ``POST`` with ``200 ok``, checks each Standard Webhooks signature against the
secret given on the command line (when one is given), and counts. ``GET /_stats`` answers the
counts and the first and last arrival times (epoch seconds, this machine's clock);
``POST /_reset`` zeroes them and sets the secret for the next run (the body is the secret).

    python bench/delivery_receiver.py --port 9100 [--secret whsec_...]
"""

from __future__ import annotations

import argparse
import time

import uvloop
from aiohttp import web
from delivery_support import secret_key, verify


class Counter:
    def __init__(self, secret: str | None) -> None:
        self.key = secret_key(secret) if secret else None
        self.count = 0
        self.bad_signatures = 0
        self.first = 0.0
        self.last = 0.0
        self.ids: set[str] = set()

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        if self.key is not None and not verify(self.key, request.headers, body):
            self.bad_signatures += 1
        self.ids.add(request.headers.get("webhook-id", ""))
        if not self.count:
            self.first = now
        self.count += 1
        self.last = now
        return web.Response(text="ok")

    async def stats(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "count": self.count,
                "distinct_ids": len(self.ids),
                "bad_signatures": self.bad_signatures,
                "first": self.first,
                "last": self.last,
            }
        )

    async def reset(self, request: web.Request) -> web.Response:
        secret = (await request.text()).strip()
        self.key = secret_key(secret) if secret else None
        self.count = self.bad_signatures = 0
        self.first = self.last = 0.0
        self.ids = set()
        return web.Response(text="reset")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", default=None)
    args = parser.parse_args()
    counter = Counter(args.secret)
    app = web.Application()
    app.router.add_get("/_stats", counter.stats)
    app.router.add_post("/_reset", counter.reset)
    app.router.add_post("/{tail:.*}", counter.hook)
    loop = uvloop.new_event_loop()
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, loop=loop)


if __name__ == "__main__":
    main()
