"""Requests that each create a new contact are applied together (hookhub/inbound/bulk.py), and
what they leave is exactly what running each alone leaves: the same contacts, events, outbox
messages (same order, same bodies) and recorded actions, whatever is mixed in the batch
(repeated emails, existing contacts, failures, other rules, an attribute still to declare).

Each test sends the same sequence twice, to two webhooks with the same rules, under two email
domains: once as it is processed, once with the bulk path turned off; then compares the two
after replacing what must differ (ids, domains, clocks).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import select

from hookhub.inbound import bulk, runner
from hookhub.services import Services
from hookhub.store.schema import contacts, custom_events, inbound_requests, messages
from tests.support.inbound import Hook, create_hook, raw_client

SECRET = "s3cret-shared-with-the-sender"
RULES = [
    {
        "name": "customer created",
        "when": "type == 'customer.created'",
        "contact": {
            "email": "data.email",
            "attributes": {
                "FIRSTNAME": "data.name && split(data.name, ' ')[0]",
                "LASTNAME": "data.name && join(' ', split(data.name, ' ')[1:]) || `null`",
                "PLAN": "data.plan",
            },
            "mode": "upsert",
        },
        "event": {
            "name": "signed_up",
            "properties": {"customer": "data.id", "livemode": "livemode"},
            "date": "created",
        },
    },
    {
        "name": "tagged",
        "when": "type == 'tagged'",
        "contact": {"email": "data.email", "attributes": {"TAG": "data.tag"}},
    },
]


def _sequence(domain: str) -> list[dict[str, Any]]:
    def created(n: int | str, name: str | None = "Jenny Rosen", **data: Any) -> dict[str, Any]:
        email = data.pop("email", f"c{n}@{domain}")
        body = {"id": f"cus_{n}", "email": email, "name": name, **data}
        return {"type": "customer.created", "livemode": False, "created": 1700000000, "data": body}

    return [
        created(1),  # declares FIRSTNAME and LASTNAME: alone
        created(2, "Ada Lovelace King", plan="pro"),  # PLAN to declare: alone
        created(3),
        created(4, None),
        created(3, "Again Here"),  # the same email twice in a batch: an update
        created(5, email="not an email"),  # fails
        created(6, email=f"  C6@{domain.upper()} "),  # another spelling: alone
        created(0),  # a contact made before: an update
        {"type": "tagged", "data": {"email": f"c7@{domain}", "tag": "x"}},
        {"type": "unknown"},
        *[created(n, f"Name{n} Last{n}", plan="free") for n in range(8, 30)],
        created(30, email=f"c8@{domain}"),  # created earlier in this batch
        created(31, "x" * 20_000),  # an attribute value too long: fails
        created(32, email=f"c7@{domain}"),  # created by "tagged" after the batch looked
    ]


def _send_all(client: Any, hook: Hook, domain: str) -> None:
    response = client.post("/api/v1/contacts", json={"email": f"c0@{domain}"})
    assert response.status_code == 201, response.text
    with raw_client(client) as sender:
        for payload in _sequence(domain):
            body = json.dumps(payload).encode()
            answer = sender.post(hook.path, content=body, headers=hook.sign(body))
            assert answer.status_code == 202, answer.text


def _drain(services: Services) -> int:
    """Process until nothing is left (a batch may stop early on its time budget)."""
    done = total = services.inbound.process_backlog()
    while done:
        done = services.inbound.process_backlog()
        total += done
    return total


def _snapshot(services: Services, hook: Hook, domain: str) -> dict[str, Any]:
    """What the hook's requests left, with ids, domains and clocks replaced by names."""
    with services.db.read() as conn:
        people = {
            row.id: row
            for row in conn.execute(select(contacts).where(contacts.c.email.like(f"%@{domain}")))
        }
        names = {cid: row.email.replace(domain, "D") for cid, row in people.items()}
        events = list(
            conn.execute(
                select(custom_events)
                .where(custom_events.c.contact_id.in_(list(people)))
                .order_by(custom_events.c.id)
            )
        )
        event_names = {row.id: f"event {n}" for n, row in enumerate(events)}
        requests = list(
            conn.execute(
                select(inbound_requests)
                .where(inbound_requests.c.webhook_id == hook.id)
                .order_by(inbound_requests.c.id)
            )
        )
        bodies = [row.payload for row in conn.execute(select(messages).order_by(messages.c.id))]

    def clean(text: str) -> str:
        text = re.sub(r'"contact_id":(\d+)', lambda m: f'"contact_id":"{names[int(m[1])]}"', text)
        text = re.sub(r'"event_id":(\d+)', lambda m: f'"event_id":"{event_names[int(m[1])]}"', text)
        text = re.sub(r'"request_id":\d+', '"request_id":"R"', text)
        text = re.sub(r'"(created_at|timestamp)":"[^"]*"', r'"\1":"T"', text)
        text = re.sub(r'"origin":\{[^}]*\}', '"origin":"O"', text)
        return text.replace(domain, "D").replace(domain.upper(), "D")

    mine = [clean(body) for body in bodies if domain in body or domain.upper() in body]
    return {
        "contacts": sorted(
            (row.email.replace(domain, "D"), row.attributes, row.ext_id, row.unsubscribed)
            for row in people.values()
        ),
        "events": [
            (names[e.contact_id], e.event_name, e.event_properties, e.event_date) for e in events
        ],
        "requests": [
            (r.status, r.error, r.error_expression, clean(r.actions or "")) for r in requests
        ],
        "messages": mine,
    }


@pytest.mark.usefixtures("services")
def test_bulk_leaves_what_one_by_one_leaves(
    client: Any, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    hooks = [create_hook(client, "generic", secret=SECRET, rules=RULES) for _ in range(2)]
    _send_all(client, hooks[0], "a.example")
    assert _drain(services) == len(_sequence("a.example"))
    with monkeypatch.context() as patch:
        patch.setattr(bulk, "simple_plan", lambda *_: None)
        _send_all(client, hooks[1], "b.example")
        assert _drain(services) == len(_sequence("b.example"))
    together = _snapshot(services, hooks[0], "a.example")
    alone = _snapshot(services, hooks[1], "b.example")
    assert [r[0] for r in together["requests"]].count("failed") == 2
    assert len(together["messages"]) > 50
    for part in ("contacts", "events", "requests", "messages"):
        assert together[part] == alone[part], part


def test_most_of_a_batch_of_new_contacts_goes_in_bulk(
    client: Any, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bulk path is taken (not only its fallback): runs of new contacts are applied
    together, and the requests around them one at a time.

    The attributes are declared first and the batch's time budget is lifted, so that the whole
    sequence is one batch whatever the machine's load: a batch looks for runs before it runs
    anything, so attributes its first requests declare would keep the rest of that batch from
    its runs, and how far a 20 ms budget gets depends on the load."""
    monkeypatch.setattr(runner, "BATCH_SECONDS", 60.0)
    for name in ("FIRSTNAME", "LASTNAME", "PLAN"):
        answer = client.post("/api/v1/attributes", json={"name": name, "type": "string"})
        assert answer.status_code == 201, answer.text
    hook = create_hook(client, "generic", secret=SECRET, rules=RULES)
    runs: list[int] = []
    apply_run = bulk.apply_run

    def counted(conn: Any, crm: Any, run: Any, finished: float) -> Any:
        done = apply_run(conn, crm, run, finished)
        runs.append(len(run) if done is not None else -len(run))
        return done

    monkeypatch.setattr(bulk, "apply_run", counted)
    _send_all(client, hook, "c.example")
    assert _drain(services) == len(_sequence("c.example"))
    assert sum(n for n in runs if n > 0) >= 15


def test_a_run_whose_email_is_taken_runs_one_by_one(
    client: Any, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should a contact exist after all (here: the batch's look is made to miss them all),
    the run's insert finds out, nothing of the run is kept, and each request runs alone:
    the existing contact is updated, the others created, as they would have been."""
    hook = create_hook(client, "generic", secret=SECRET, rules=RULES)
    runs: list[int] = []
    apply_run = bulk.apply_run

    def counted(conn: Any, crm: Any, run: Any, finished: float) -> Any:
        done = apply_run(conn, crm, run, finished)
        runs.append(len(run) if done is not None else -len(run))
        return done

    monkeypatch.setattr(bulk, "apply_run", counted)
    monkeypatch.setattr(bulk, "not_yet_contacts", lambda _conn, found: {c.email for c in found})
    _send_all(client, hook, "e.example")
    assert _drain(services) == len(_sequence("e.example"))
    assert any(n < 0 for n in runs)
    snapshot = _snapshot(services, hook, "e.example")
    existing = next(c for c in snapshot["contacts"] if c[0] == "c0@D")
    assert json.loads(existing[1])["FIRSTNAME"] == "Jenny"
    assert len(snapshot["contacts"]) == 29
    assert [r[0] for r in snapshot["requests"]].count("processed") == 33
