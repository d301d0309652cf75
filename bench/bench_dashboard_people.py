"""How fast the dashboard's people pages answer on a big database (in process, SQLite).

Seeds 100,000 contacts (one list holding all of them, one holding ten), 100,000 custom events,
1,000,000 outbound messages with a delivery each, 100,000 inbound requests whose actions name
contacts, 100,000 emails with an event each and 10,000 automation enrollments; then asks each
people page (contacts, a contact with its timeline, searches, lists, templates, campaigns,
emails, automations) ``--rounds`` times through a signed-in TestClient of the real app, and
prints p50/p95 per page beside a bare page (``/healthz``) asked the same way in the same run.

    .venv/bin/python bench/bench_dashboard_people.py [--rounds 40] [--contacts 100000]

The whole dashboard through a real ``hookhub serve`` is bench_dashboard.py's; this one finds
which of these pages' queries are slow, without the server's costs around them.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert

from bench.common import machine_info, print_machine
from hookhub import ids
from hookhub.config import load_settings
from hookhub.services import build_services
from hookhub.store.migrate import migrate
from hookhub.store.schema import (
    contacts,
    custom_events,
    deliveries,
    endpoints,
    inbound_requests,
    inbound_webhooks,
    list_members,
    lists,
    messages,
)
from hookhub.store.schema_automation import automation_enrollments, automations
from hookhub.store.schema_email import email_events, email_templates, emails

BATCH = 20_000
PASSWORD = "bench password, long enough"


def _chunks(rows: list[dict[str, Any]]) -> Any:
    for start in range(0, len(rows), BATCH):
        yield rows[start : start + BATCH]


def seed(db: Any, n_contacts: int, n_messages: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    start = now - timedelta(days=30)
    rng = random.Random(7)
    with db.write() as conn:
        for part in _chunks(
            [
                {
                    "email": f"user{i:06d}@example.com",
                    "attributes": json.dumps({"PLAN": "pro" if i % 50 == 0 else "free"}),
                    "unsubscribed": False,
                    "created_at": start,
                    "updated_at": start,
                }
                for i in range(n_contacts)
            ]
        ):
            conn.execute(insert(contacts), part)
        big = conn.execute(
            insert(lists).values(name="everyone", created_at=now)
        ).inserted_primary_key
        small = conn.execute(insert(lists).values(name="ten", created_at=now)).inserted_primary_key
        for part in _chunks(
            [{"list_id": big[0], "contact_id": i + 1, "added_at": now} for i in range(n_contacts)]
        ):
            conn.execute(insert(list_members), part)
        conn.execute(
            insert(list_members),
            [
                {"list_id": small[0], "contact_id": i * (n_contacts // 10) + 1, "added_at": now}
                for i in range(10)
            ],
        )
        for part in _chunks(
            [
                {
                    "event_name": "viewed",
                    "contact_id": i % n_contacts + 1,
                    "event_properties": "{}",
                    "event_date": start + timedelta(seconds=i),
                    "created_at": start + timedelta(seconds=i),
                }
                for i in range(n_contacts)
            ]
        ):
            conn.execute(insert(custom_events), part)
    with db.write() as conn:
        endpoint = conn.execute(
            insert(endpoints).values(
                url="http://127.0.0.1:9/x",
                event_types='["*"]',
                secret="whsec_bench",
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]
        hook = conn.execute(
            insert(inbound_webhooks).values(
                name="bench", source="generic", token="benchtoken", created_at=now, updated_at=now
            )
        ).inserted_primary_key[0]
        span = (now - start).total_seconds()
        for first in range(0, n_messages, BATCH):
            rows, shipped = [], []
            for k in range(first, min(first + BATCH, n_messages)):
                at = start.timestamp() + span * k / n_messages
                message_id = "msg_" + ids._id_body(int(at * 1000), k)
                cid = rng.randrange(n_contacts) + 1
                payload = (
                    '{"type":"contact.updated","timestamp":"x","data":{"contact_id":'
                    + str(cid)
                    + ',"email":"user@example.com","changes":{}},"origin":null}'
                )
                rows.append(
                    {
                        "id": message_id,
                        "type": "contact.updated",
                        "payload": payload,
                        "created_at": datetime.fromtimestamp(at, UTC),
                    }
                )
                shipped.append(
                    {
                        "message_id": message_id,
                        "endpoint_id": endpoint,
                        "status": "succeeded",
                        "attempt_count": 1,
                        "last_status_code": 200,
                        "created_at": at,
                        "updated_at": at,
                    }
                )
            conn.execute(insert(messages), rows)
            conn.execute(insert(deliveries), shipped)
        for part in _chunks(
            [
                {
                    "webhook_id": hook,
                    "received_at": start.timestamp() + i,
                    "status": "processed",
                    "http_status": 202,
                    "headers": "[]",
                    "body": b'{"email":"x@example.com"}',
                    "actions": '[{"rule":0,"contact_id":'
                    + str(i % n_contacts + 1)
                    + ',"created":false}]',
                }
                for i in range(n_contacts)
            ]
        ):
            conn.execute(insert(inbound_requests), part)
    with db.write() as conn:
        template = conn.execute(
            insert(email_templates).values(
                name="bench",
                subject="Hi",
                html="<p>Hi {{ contact.email }}</p>",
                tags="[]",
                version=1,
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]
        for part in _chunks(
            [
                {
                    "message_id": f"bench{i}@example.com",
                    "kind": "transactional",
                    "contact_id": i + 1,
                    "to_email": f"user{i:06d}@example.com",
                    "sender": '{"email":"from@example.com"}',
                    "subject": "Hi",
                    "template_id": template,
                    "status": "bounced" if i % 1000 == 0 else "sent",
                    "raw": b"Subject: Hi\r\nContent-Type: text/html\r\n\r\n<p>Hi</p>",
                    "created_at": start,
                    "sent_at": start,
                    "updated_at": start.timestamp(),
                }
                for i in range(n_contacts)
            ]
        ):
            conn.execute(insert(emails), part)
        for part in _chunks(
            [
                {"email_id": i + 1, "type": "sent", "at": start.timestamp() + i}
                for i in range(n_contacts)
            ]
        ):
            conn.execute(insert(email_events), part)
        flow = conn.execute(
            insert(automations).values(
                name="bench",
                enabled=True,
                trigger='{"type":"manual"}',
                reentry="never",
                exit_on_unsubscribe=True,
                steps='[{"id":"w","wait":"1d"}]',
                version=1,
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]
        conn.execute(
            insert(automation_enrollments),
            [
                {
                    "automation_id": flow,
                    "contact_id": i * 10 + 1,
                    "status": "active",
                    "step_id": "w",
                    "trigger": "{}",
                    "entered_at": start.timestamp() + i,
                    "updated_at": start.timestamp() + i,
                    "due_at": now.timestamp() + 86400,
                }
                for i in range(n_contacts // 10)
            ],
        )
    middle = n_contacts // 2 + 1
    return {
        "big": big[0],
        "small": small[0],
        "template": template,
        "flow": flow,
        "middle": middle,
        "email": n_contacts // 2,
    }


def measure(client: Any, path: str, rounds: int) -> tuple[float, float]:
    for _ in range(3):
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        client.get(path)
        times.append((time.perf_counter() - began) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    args = parser.parse_args()
    print_machine(machine_info(None))
    from fastapi.testclient import TestClient

    from hookhub.api.app import create_app
    from hookhub.users import DashboardUsers, Role

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(database_url=f"sqlite:///{tmp}/bench.db", log_format="text")
        services = build_services(settings)
        migrate(services.db)
        began = time.perf_counter()
        seeded = seed(services.db, args.contacts, args.messages)
        print(
            f"seeded in {time.perf_counter() - began:.0f} s: {args.contacts} contacts, "
            f"{args.messages} messages and deliveries, {args.contacts} inbound requests, "
            f"emails and events, {args.contacts // 10} enrollments"
        )
        users = DashboardUsers(services.db)
        user = users.create("bench@example.com", PASSWORD, Role("admin"))
        token, _session = users.start_session(user)
        with TestClient(create_app(services)) as client:
            client.cookies.set("hookhub_session", token)
            m, e, s = seeded["middle"], seeded["email"], seeded["small"]
            timeline = client.get(f"/contacts/{m}/timeline").text
            older = timeline.split('hx-get="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
            pages = [
                "/healthz",
                "/contacts",
                "/contacts?q=user05",
                "/contacts?q=PLAN%3Dpro",
                f"/contacts/{m}",
                older,
                "/lists",
                f"/lists/{seeded['big']}",
                f"/lists/{s}",
                "/templates",
                f"/templates/{seeded['template']}",
                "/campaigns",
                "/emails",
                "/emails?status=bounced",
                f"/emails?to=user{e:06d}%40example.com",
                f"/emails/{e}",
                "/automations",
                f"/automations/{seeded['flow']}",
                f"/automations/{seeded['flow']}?contact=1",
            ]
            print(f"\n{'page':58} {'p50 ms':>8} {'p95 ms':>8}")
            for path in pages:
                p50, p95 = measure(client, path, args.rounds)
                print(f"{path[:58]:58} {p50:8.1f} {p95:8.1f}")
        services.close()


if __name__ == "__main__":
    main()
