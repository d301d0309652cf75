"""The bare baseline of bench_processing.py: the Stripe preset's work, straight to the driver.

Reads the same backlog of ``customer.created`` requests from Hookhub's request log, in arrival
order, and for each one does what the preset rule's upsert, event and outbox amount to, with
the stdlib's ``sqlite3`` (or ``psycopg``) and nothing else: parse the JSON body, look the
contact up by email, insert it (attributes as JSON), insert the custom event, insert the two
outbox messages (``contact.created``, ``event.tracked``) and mark the request processed with
what was done; 100 requests a transaction, each in a savepoint, like Hookhub. No rule
engine, no validation beyond what the statements need, no fan-out (the benchmark's database
has no endpoint). It is what the hardware allows for the same rows, the denominator of the
ratio.

    python bench/processing_baseline.py DATABASE_URL   # prints a JSON line: requests, seconds
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

BATCH = 100


def connect(url: str) -> tuple[Any, str]:
    if url.startswith("sqlite:///"):
        import sqlite3

        conn = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn, "?"
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")), "%s"


def main() -> None:
    url = sys.argv[1]
    conn, mark = connect(url)
    sqlite = mark == "?"

    def sql(text: str) -> str:
        return text.replace("?", mark)

    started, cpu_started = time.monotonic(), time.process_time()
    done, serial = 0, 0
    cur = conn.cursor()
    cur.execute("SELECT min(webhook_id) FROM inbound_requests WHERE status = 'received'")
    webhook_id = cur.fetchone()[0]
    pending = (
        "SELECT id, body FROM inbound_requests"
        + (" INDEXED BY ix_inbound_requests_pending" if sqlite else "")
        + " WHERE status = 'received' AND webhook_id = ? ORDER BY id LIMIT ?"
    )
    if not sqlite:
        conn.commit()
    while True:
        if sqlite:
            conn.execute("BEGIN IMMEDIATE")
        cur = conn.cursor()
        cur.execute(sql(pending), (webhook_id, BATCH))
        batch = cur.fetchall()
        if not batch:
            conn.rollback() if not sqlite else conn.execute("ROLLBACK")
            break
        now = datetime.now(UTC)
        stamp = now.isoformat() if sqlite else now
        finished = []
        for request_id, body in batch:
            cur.execute("SAVEPOINT r")
            event = json.loads(bytes(body))
            customer = event["data"]["object"]
            email = customer["email"].strip().lower()
            cur.execute(sql("SELECT id FROM contacts WHERE email = ?"), (email,))
            if cur.fetchone() is not None:
                raise SystemExit("the baseline expects new contacts only")
            first, _, last = (customer.get("name") or "").partition(" ")
            attributes = {"FIRSTNAME": first, "LASTNAME": last}
            attributes["STRIPE_CUSTOMER_ID"] = customer["id"]
            cur.execute(
                sql(
                    "INSERT INTO contacts (email, attributes, unsubscribed, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?) RETURNING id"
                ),
                (email, json.dumps(attributes), False, stamp, stamp),
            )
            contact_id = cur.fetchone()[0]
            properties = {"customer": customer["id"], "livemode": event.get("livemode")}
            cur.execute(
                sql(
                    "INSERT INTO custom_events (event_name, contact_id, event_properties,"
                    " event_date, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id"
                ),
                ("stripe_customer_created", contact_id, json.dumps(properties), stamp, stamp),
            )
            event_id = cur.fetchone()[0]
            messages = []
            created = {"contact_id": contact_id, "email": email, "attributes": attributes}
            tracked = {"contact_id": contact_id, "event_id": event_id, "properties": properties}
            for kind, data in (("contact.created", created), ("event.tracked", tracked)):
                serial += 1
                body_out = {"id": f"msg_{os.getpid()}_{serial}", "type": kind, "data": data}
                messages.append((body_out["id"], kind, json.dumps(body_out), stamp))
            cur.executemany(
                sql("INSERT INTO messages (id, type, payload, created_at) VALUES (?, ?, ?, ?)"),
                messages,
            )
            cur.execute("RELEASE SAVEPOINT r")
            actions = [{"rule": "customer created", "contact": "created", "contact_id": contact_id}]
            finished.append(("processed", json.dumps(actions), time.time(), request_id))
        cur.executemany(
            sql(
                "UPDATE inbound_requests SET status = ?, actions = ?, processed_at = ? WHERE id = ?"
            ),
            finished,
        )
        conn.execute("COMMIT") if sqlite else conn.commit()
        done += len(batch)
    print(
        json.dumps(
            {
                "requests": done,
                "seconds": time.monotonic() - started,
                "cpu_seconds": time.process_time() - cpu_started,
            }
        )
    )


if __name__ == "__main__":
    main()
