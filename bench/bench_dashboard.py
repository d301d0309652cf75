"""Every dashboard page's latency on a big database, through a real ``hookhub serve``.

Seeds a fresh database (bulk inserts, like the other benchmarks' prefills) with 100,000
contacts, 1,000,000 deliveries (100,000 messages to 10 endpoints, one attempt each),
100,000 inbound requests and 20,000 emails spread over the last 7 days, plus a few lists,
templates, a campaign and an automation made through the API's own routes in-process. Then
starts ``hookhub serve``, signs in through the sign-in form, and times every GET page the
dashboard has at run time (its routes are read from the app: every section's list and
detail pages, path ids filled with seeded rows), interleaved round by round with two bare pages
(``/healthz`` and ``/login``) as the baseline measured side by side. Prints p50/p95 per page,
the ratio of each p95 to the bare page's, and whether it meets the 100 ms goal.

    .venv/bin/python bench/bench_dashboard.py [--contacts 100000] [--messages 100000]
        [--endpoints 10] [--inbound 100000] [--emails 20000] [--rounds 40]
        [--backend sqlite|postgresql] [--postgres-url URL] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import re
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx
from common import (
    DEFAULT_POSTGRES_URL,
    Server,
    free_port,
    fresh_database,
    hookhub_command,
    machine_info,
    print_machine,
)
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select, text

from hookhub import ids
from hookhub.api.app import create_app
from hookhub.config import load_settings
from hookhub.services import Services, build_services
from hookhub.store.migrate import migrate
from hookhub.store.schema import (
    contacts,
    custom_events,
    deliveries,
    delivery_attempts,
    emails,
    inbound_requests,
    list_members,
    messages,
)
from hookhub.users import DashboardUsers
from hookhub.web.app import is_dashboard_path, page_routers

SECRET_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
API_KEY = "hh_bench_dashboard_key_0123456789abcdefghijklmnop"
EMAIL, PASSWORD = "bench@example.com", "bench password, long enough"
CHUNK = 5000
WEEK = 7 * 86_400
GOAL_MS = 100.0
SKIP_PATHS = {"/login", "/logout"}
FAILURES: list[str] = []
"""Answers other than 200 while timing: printed with the server's log at the end."""


def _chunks(count: int) -> Iterator[range]:
    for start in range(0, count, CHUNK):
        yield range(start, min(start + CHUNK, count))


def seed(services: Services, args: argparse.Namespace) -> dict[str, int]:
    """Returns the ids the detail pages are timed with."""
    rng = random.Random(15)
    now = time.time()
    stamp = datetime.now(UTC)
    made: dict[str, int] = {}
    with TestClient(create_app(services), headers={"Authorization": f"Bearer {API_KEY}"}) as api:

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            answer = api.post(f"/api/v1{path}", json=body)
            assert answer.status_code in (200, 201), f"{path}: {answer.text}"
            created: dict[str, Any] = answer.json()
            return created

        endpoint_ids = [
            post("/webhooks", {"url": f"https://hooks{i}.example.com/in", "events": ["*"]})["id"]
            for i in range(args.endpoints)
        ]
        hook_ids = [
            post("/inbound-webhooks", {"name": f"Shop {i}", "source": "stripe"})["id"]
            for i in range(3)
        ]
        list_ids = [post("/lists", {"name": f"List {i}"})["id"] for i in range(5)]
        made["template_id"] = post(
            "/email-templates",
            {"name": "Welcome", "subject": "Hi {{ contact.email }}", "html": "<p>Hello</p>",
             "sender": {"email": "shop@example.com", "name": "Shop"}},
        )["id"]
        made["campaign_id"] = post(
            "/campaigns",
            {"name": "December news", "subject": "News", "html": "<p>Hi</p>",
             "list_ids": [list_ids[0]], "sender": {"email": "shop@example.com"}},
        )["id"]
        made["automation_id"] = post(
            "/automations",
            {"name": "Welcome series", "trigger": {"type": "manual"},
             "steps": [{"id": "pause", "wait": "2d"},
                       {"id": "tag", "track_event": {"name": "welcomed"}}]},
        )["id"]
    print(f"seed: {args.contacts:,} contacts ...", flush=True)
    with services.db.write() as conn:
        for part in _chunks(args.contacts):
            conn.execute(insert(contacts), [
                {"email": f"c{i}@example.com", "attributes": f'{{"plan": "p{i % 4}"}}',
                 "unsubscribed": False, "created_at": stamp, "updated_at": stamp}
                for i in part
            ])
        first = int(conn.execute(select(func.min(contacts.c.id))).scalar_one())
        half = min(args.contacts, 50_000)
        for part in _chunks(half):
            conn.execute(insert(list_members), [
                {"list_id": list_ids[0], "contact_id": first + i, "added_at": stamp} for i in part
            ])
        made["contact_id"] = first + args.contacts // 2
        made["list_id"] = list_ids[0]
        conn.execute(insert(custom_events), [
            {"event_name": "order.placed", "contact_id": made["contact_id"],
             "event_properties": '{"total": 12}', "event_date": stamp, "created_at": stamp}
            for _ in range(50)
        ])
    print(f"seed: {args.messages:,} messages x {args.endpoints} endpoints ...", flush=True)
    with services.db.read() as conn:
        delivery_id = int(conn.execute(select(func.max(deliveries.c.id))).scalar_one() or 0)
    made["delivery_id"] = delivery_id + (args.messages // 2) * args.endpoints + 1
    for part in _chunks(args.messages):
        with services.db.write() as conn:
            rows, sent, tries = [], [], []
            for _ in part:
                at = now - rng.random() * WEEK
                message_id = ids.message_id(at)
                contact = first + rng.randrange(args.contacts)
                rows.append({"id": message_id, "type": "contact.updated", "created_at":
                             datetime.fromtimestamp(at, UTC), "payload":
                             f'{{"type": "contact.updated", "data": {{"id": {contact}}}}}'})
                for endpoint_id in endpoint_ids:
                    delivery_id += 1
                    ok = rng.random() < 0.95
                    sent.append({"id": delivery_id, "message_id": message_id,
                                 "endpoint_id": endpoint_id,
                                 "status": "succeeded" if ok else "failed", "attempt_count": 1,
                                 "last_status_code": 200 if ok else 500,
                                 "next_attempt_at": None if ok else now + 3600,
                                 "created_at": at, "updated_at": at + 0.2})
                    tries.append({"delivery_id": delivery_id, "attempted_at": at + 0.1,
                                  "status_code": 200 if ok else 500,
                                  "duration_ms": rng.lognormvariate(3.5, 0.8),
                                  "response_body": "ok" if ok else "upstream error"})
            conn.execute(insert(messages), rows)
            conn.execute(insert(deliveries), sent)
            conn.execute(insert(delivery_attempts), tries)
    made["endpoint_id"] = endpoint_ids[0]
    print(f"seed: {args.inbound:,} inbound requests ...", flush=True)
    for part in _chunks(args.inbound):
        with services.db.write() as conn:
            rows = []
            for i in part:
                at = now - rng.random() * WEEK
                failed = rng.random() < 0.03
                rows.append({"webhook_id": hook_ids[i % len(hook_ids)], "received_at": at,
                             "status": "failed" if failed else "processed", "http_status": 200,
                             "headers": '[["content-type", "application/json"]]',
                             "body": f'{{"id": "evt_{i}", "type": "customer.created", '
                                     f'"data": {{"object": {{"email": "c{i}@example.com"}}}}}}'
                                     .encode(),
                             "event_type": "customer.created",
                             "error": "no rule matched" if failed else None,
                             "actions": "[]", "processed_at": at + 0.05})
            conn.execute(insert(inbound_requests), rows)
    with services.db.read() as conn:
        made["webhook_id"] = hook_ids[0]
        made["request_id"] = int(conn.execute(
            select(func.max(inbound_requests.c.id)).where(
                inbound_requests.c.webhook_id == hook_ids[0])
        ).scalar_one())
    print(f"seed: {args.emails:,} emails ...", flush=True)
    for part in _chunks(args.emails):
        with services.db.write() as conn:
            rows = []
            for i in part:
                at = now - rng.random() * WEEK
                when = datetime.fromtimestamp(at, UTC)
                status = rng.choice(("sent", "sent", "delivered", "bounced", "queued"))
                rows.append({"message_id": f"e{i}@example.com", "kind": "transactional",
                             "contact_id": first + i % args.contacts,
                             "to_email": f"c{i % args.contacts}@example.com",
                             "sender": '{"email": "shop@example.com"}', "subject": "Hello",
                             "status": status, "created_at": when,
                             "sent_at": None if status == "queued" else when,
                             "raw": b"Subject: Hello\r\n\r\nHi", "updated_at": at})
            conn.execute(insert(emails), rows)
    with services.db.read() as conn:
        made["email_id"] = int(conn.execute(select(func.max(emails.c.id))).scalar_one())
    with services.db.write() as conn:
        conn.execute(text("ANALYZE"))
    DashboardUsers(services.db).create(EMAIL, PASSWORD, "admin")
    return made


def page_paths(made: dict[str, int]) -> tuple[list[str], list[str]]:
    """Every GET route of the dashboard, ids filled in; and the routes that could not be."""
    paths, missing = [], []
    routes = [route for router in page_routers() for route in router.routes]
    for route in routes:
        if not isinstance(route, APIRoute) or "GET" not in route.methods:
            continue
        if not is_dashboard_path(route.path) or route.path in SKIP_PATHS:
            continue
        names = re.findall(r"{(\w+)(?::\w+)?}", route.path)
        if any(n not in made for n in names):
            missing.append(route.path)
            continue
        path = re.sub(r"{(\w+)(?::\w+)?}", lambda m: str(made[m.group(1)]), route.path)
        paths.append(path)
    paths += ["/overview/activity?window=hour", "/overview/activity?window=week",
              "/contacts?q=c4242", "/inbound/{webhook_id}/requests?status=failed".format(**made)]
    return sorted(set(paths)), missing


def sign_in(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    answer = client.post("/login", data={"email": EMAIL, "password": PASSWORD,
                                         "csrf_token": token.group(1), "next": "/"})
    assert answer.status_code == 303, answer.text
    return client


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(
    client: httpx.Client, anonymous: httpx.Client, paths: list[str], rounds: int
) -> dict[str, list[float]]:
    """``/login`` goes through ``anonymous`` (signed in, it redirects); the rest signed in."""

    def get(path: str) -> httpx.Response:
        return (anonymous if path == "/login" else client).get(path)

    timings: dict[str, list[float]] = {p: [] for p in paths}
    cold: dict[str, float] = {}
    failures = FAILURES
    for path in paths:  # the first request of each page, counted apart
        started = time.perf_counter()
        answer = get(path)
        cold[path] = (time.perf_counter() - started) * 1000
        if answer.status_code != 200:
            print(f"  ! {path} answered {answer.status_code}")
    rng = random.Random(1)
    for _ in range(2):
        for path in paths:
            get(path)
    for _ in range(rounds):
        order = paths[:]
        rng.shuffle(order)
        for path in order:
            started = time.perf_counter()
            answer = get(path)
            timings[path].append((time.perf_counter() - started) * 1000)
            if answer.status_code != 200:
                failures.append(f"{path}: {answer.status_code}")
    timings["__cold__"] = [cold[p] for p in paths]
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--inbound", type=int, default=100_000)
    parser.add_argument("--emails", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--keep", type=Path, help="seed into (or reuse) this directory's DB")
    args = parser.parse_args()
    print_machine(machine_info(args.postgres_url if args.backend == "postgresql" else None))
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        kept = args.keep / "dashboard.db" if args.keep else None
        if kept is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{kept}"
        else:
            url = stack.enter_context(
                fresh_database(args.backend, args.postgres_url, Path(tmp), "dashboard")
            )
        settings = load_settings(database_url=url, secret_key=SECRET_KEY, api_key=API_KEY)
        services = build_services(settings)
        migrate(services.db)
        services.keys.adopt("bench", API_KEY)
        ids_file = args.keep / "seeded.json" if args.keep else None
        if ids_file is not None and ids_file.exists():
            made = json.loads(ids_file.read_text())
            print(f"seed: reusing {kept}")
        else:
            started = time.monotonic()
            made = seed(services, args)
            print(f"seed: done in {time.monotonic() - started:.0f} s")
            if ids_file is not None:
                ids_file.write_text(json.dumps(made))
        paths, missing = page_paths(made)
        services.close()
        port = free_port()
        env = {"HOOKHUB_DATABASE_URL": url, "HOOKHUB_SECRET_KEY": SECRET_KEY,
               "HOOKHUB_API_KEY": API_KEY, "HOOKHUB_LOG_LEVEL": "WARNING"}
        with Server("hookhub", [*hookhub_command(), "serve", "--port", str(port)],
                    health_url=f"http://127.0.0.1:{port}/healthz",
                    log_path=Path(tmp) / "serve.log", env=env):
            base = f"http://127.0.0.1:{port}"
            client = sign_in(base)
            anonymous = httpx.Client(base_url=base, timeout=30)
            bare = ["/healthz", "/login"]
            timings = measure(client, anonymous, bare + paths, args.rounds)
            if FAILURES:
                print(f"\n{len(FAILURES)} answers were not 200: {FAILURES[:20]}")
                print((Path(tmp) / "serve.log").read_text(errors="replace")[-6000:])
        cold = dict(zip(bare + paths, timings.pop("__cold__"), strict=True))
    base_p95 = max(quantile(timings["/healthz"], 0.95), 0.001)
    print(f"\n{args.rounds} rounds, pages in random order each round; ms; "
          f"ratio = p95 / p95 of /healthz")
    print(f"{'page':<58} {'first':>7} {'p50':>7} {'p95':>7} {'ratio':>6}  goal")
    slow = []
    for path in bare + paths:
        values = timings[path]
        p50, p95 = statistics.median(values), quantile(values, 0.95)
        verdict = "" if path in bare else ("ok" if p95 <= GOAL_MS else "SLOW")
        if verdict == "SLOW":
            slow.append(path)
        print(f"{path:<58} {cold[path]:7.1f} {p50:7.1f} {p95:7.1f} {p95 / base_p95:6.1f}  "
              f"{verdict}")
    if missing:
        print(f"\nnot timed (no seeded id for): {', '.join(missing)}")
    print(f"\n{len(paths) - len(slow)}/{len(paths)} pages within {GOAL_MS:.0f} ms at p95"
          + (f"; slow: {', '.join(slow)}" if slow else ""))


if __name__ == "__main__":
    main()
