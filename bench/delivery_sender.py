"""The baseline of the delivery throughput benchmark: a bare aiohttp sender, no database.

Reads the messages Hookhub would deliver (JSON lines ``{"id": ..., "body": ...}``, written by
bench_delivery.py from the database before timing), then posts each body once to ``--url``,
Standard Webhooks signed (a fresh timestamp and HMAC-SHA256 per request), from ``--concurrency``
keep-alive connections of one ``aiohttp.ClientSession`` on uvloop. Prints one JSON line: how
many were sent, how many got a 2xx, and the time from the first request to the last answer.

    python bench/delivery_sender.py --url http://127.0.0.1:9100/hook --secret whsec_... \
        --messages messages.jsonl --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp
import orjson
import uvloop
from delivery_support import secret_key, signed_headers


async def send_all(
    url: str, key: bytes, messages: list[tuple[str, bytes]], concurrency: int, timeout: float
) -> dict[str, float]:
    pending = iter(messages)
    ok = 0
    failed = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=timeout),
    ) as session:

        async def lane() -> None:
            nonlocal ok, failed
            for msg_id, body in pending:
                headers = signed_headers(key, msg_id, body, int(time.time()))
                try:
                    async with session.post(
                        url, data=body, headers=headers, allow_redirects=False
                    ) as response:
                        await response.read()
                        if 200 <= response.status < 300:
                            ok += 1
                        else:
                            failed += 1
                except (aiohttp.ClientError, TimeoutError):
                    failed += 1

        started = time.time()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        finished = time.time()
    return {
        "sent": len(messages),
        "ok": ok,
        "failed": failed,
        "started": started,
        "finished": finished,
        "elapsed": finished - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--messages", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=15.0)
    args = parser.parse_args()
    messages = []
    with args.messages.open("rb") as lines:
        for line in lines:
            record = orjson.loads(line)
            messages.append((record["id"], record["body"].encode()))
    result = uvloop.run(
        send_all(args.url, secret_key(args.secret), messages, args.concurrency, args.timeout)
    )
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
