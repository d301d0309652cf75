"""A campaign's recipient snapshot: the time to queue one email per recipient.

Prefills a fresh database with N contacts in one list (and a tenth of them also in an
excluded list), then queues the campaign's emails two ways, each on its own fresh copy, in the
same run and alternating from run to run:

* ``hookhub``: the campaign loop's snapshot (``CampaignLoop.step`` until done): one
  ``INSERT ... SELECT`` per batch, Message-IDs made in SQL;
* ``baseline``: the same batches, the same cursor updates and transactions, but the rows built
  in Python (a ``NewEmail`` each, its Message-ID from ``ids.email_message_id``) and inserted with
  ``EmailStore.insert_campaign_batch`` (executemany, ON CONFLICT DO NOTHING).

Prints wall and CPU seconds of this process for each (SQLite works in this process; with
PostgreSQL the server's CPU is not counted), and the ratios baseline / hookhub.

    .venv/bin/python bench/bench_campaign_snapshot.py [--contacts 100000] [--runs 3]
        [--backend sqlite|postgresql] [--postgres-url URL] [--batch 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from common import DEFAULT_POSTGRES_URL, fresh_database, machine_info, median, print_machine
from sqlalchemy import insert, select, update

from hookhub import ids
from hookhub.config import load_settings
from hookhub.email.campaign_loop import CampaignLoop
from hookhub.email.campaigns import CampaignService, sender_defaults
from hookhub.services import Services, build_services
from hookhub.store.campaigns import CampaignStore
from hookhub.store.email_rows import NewEmail
from hookhub.store.emails import EmailStore
from hookhub.store.migrate import migrate
from hookhub.store.schema import contacts, list_members, lists
from hookhub.store.schema_email import campaigns, emails


def prefill(services: Services, count: int) -> tuple[int, int]:
    """N contacts in list A, every tenth also in list B (excluded); the ids of A and B."""
    now = datetime.now(UTC)
    with services.db.write() as conn:
        a = conn.execute(insert(lists).values(name="A", created_at=now).returning(lists.c.id))
        list_a = int(a.scalar_one())
        b = conn.execute(insert(lists).values(name="B", created_at=now).returning(lists.c.id))
        list_b = int(b.scalar_one())
        for start in range(0, count, 10_000):
            rows = [
                {
                    "email": f"c{n}@example.com",
                    "attributes": '{"FIRSTNAME":"C"}',
                    "unsubscribed": False,
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(start, min(count, start + 10_000))
            ]
            conn.execute(insert(contacts), rows)
        ids_ = list(conn.execute(select(contacts.c.id).order_by(contacts.c.id)).scalars())
        members = [{"list_id": list_a, "contact_id": i, "added_at": now} for i in ids_]
        members += [{"list_id": list_b, "contact_id": i, "added_at": now} for i in ids_[::10]]
        for start in range(0, len(members), 10_000):
            conn.execute(insert(list_members), members[start : start + 10_000])
    return list_a, list_b


def start_campaign(services: Services, list_a: int, list_b: int) -> int:
    service = CampaignService(services.db, services.outbox, services.settings)
    campaign = service.create(
        {
            "name": "bench",
            "subject": "Hi {{ contact.FIRSTNAME }}",
            "html": "<p>{{ params.offer }}</p>",
            "list_ids": [list_a],
            "exclude_list_ids": [list_b],
            "params": {"offer": "20%"},
        }
    )
    service.send(campaign.id)
    return campaign.id


def hookhub_snapshot(services: Services, campaign_id: int, batch: int) -> None:
    loop = CampaignLoop(services.db, services.settings, batch=batch)
    while loop.step():
        pass


def baseline_snapshot(services: Services, campaign_id: int, batch: int) -> None:
    """The same batches built as Python rows and inserted with executemany."""
    while True:
        now = datetime.now(UTC)
        with services.db.write() as conn:
            store = CampaignStore(conn)
            campaign = store.get(campaign_id, lock=True)
            assert campaign is not None
            defaults = sender_defaults(campaign, services.settings)
            cursor = campaign.snapshot_cursor or 0
            member = select(list_members.c.contact_id).where(
                list_members.c.contact_id == contacts.c.id,
                list_members.c.list_id.in_(campaign.list_ids),
            )
            excluded = select(list_members.c.contact_id).where(
                list_members.c.contact_id == contacts.c.id,
                list_members.c.list_id.in_(campaign.exclude_list_ids),
            )
            recipients = conn.execute(
                select(contacts.c.id, contacts.c.email)
                .where(
                    contacts.c.id > cursor,
                    member.exists(),
                    ~excluded.exists(),
                    contacts.c.unsubscribed.is_(False),
                    contacts.c.email_blocked.is_(None),
                )
                .order_by(contacts.c.id)
                .limit(batch)
            ).all()
            if not recipients:
                conn.execute(
                    update(campaigns)
                    .where(campaigns.c.id == campaign_id)
                    .values(snapshot_done=True)
                )
                return
            at = now.timestamp()
            new = [
                NewEmail(
                    message_id=ids.email_message_id(defaults.domain, at),
                    kind="campaign",
                    to_email=email,
                    contact_id=contact_id,
                    sender=defaults.sender,
                    reply_to=campaign.reply_to,
                    template_id=campaign.template_id,
                    campaign_id=campaign_id,
                    tags=campaign.tags,
                    track_opens=campaign.track_opens,
                    track_clicks=campaign.track_clicks,
                    created_at=now,
                )
                for contact_id, email in recipients
            ]
            EmailStore(conn).insert_campaign_batch(new)
            conn.execute(
                update(campaigns)
                .where(campaigns.c.id == campaign_id)
                .values(snapshot_cursor=recipients[-1][0])
            )


def one(target: str, backend: str, admin_url: str, count: int, batch: int) -> tuple[float, float]:
    with (
        tempfile.TemporaryDirectory(prefix="hookhub-bench-snapshot-") as tmp,
        fresh_database(backend, admin_url, Path(tmp), f"snap_{target}") as url,
    ):
        settings = load_settings(database_url=url)
        services = build_services(settings)
        try:
            migrate(services.db)
            list_a, list_b = prefill(services, count)
            campaign_id = start_campaign(services, list_a, list_b)
            run = hookhub_snapshot if target == "hookhub" else baseline_snapshot
            wall, cpu = time.perf_counter(), time.process_time()
            run(services, campaign_id, batch)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            with services.db.read() as conn:
                queued = len(
                    conn.execute(
                        select(emails.c.id).where(emails.c.campaign_id == campaign_id)
                    ).all()
                )
            expected = count - len(range(0, count, 10))
            assert queued == expected, (target, queued, expected)
        finally:
            services.close()
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    args = parser.parse_args()
    print_machine(machine_info(args.postgres_url if args.backend == "postgresql" else None))
    print(f"{args.contacts} contacts, 90% recipients, batches of {args.batch}, {args.backend}")
    results: dict[str, list[tuple[float, float]]] = {"hookhub": [], "baseline": []}
    ratios: list[float] = []
    cpu_ratios: list[float] = []
    for run in range(args.runs):
        order = ["hookhub", "baseline"] if run % 2 == 0 else ["baseline", "hookhub"]
        this: dict[str, tuple[float, float]] = {}
        for target in order:
            this[target] = one(target, args.backend, args.postgres_url, args.contacts, args.batch)
            results[target].append(this[target])
            wall, cpu = this[target]
            print(f"run {run + 1} {target:<9} wall {wall:6.2f} s  cpu {cpu:6.2f} s", flush=True)
        ratios.append(this["baseline"][0] / this["hookhub"][0])
        cpu_ratios.append(this["baseline"][1] / this["hookhub"][1])
    for target, values in results.items():
        wall = median([w for w, _ in values])
        cpu = median([c for _, c in values])
        print(f"median {target:<9} wall {wall:6.2f} s  cpu {cpu:6.2f} s")
    print("baseline / hookhub (wall, per run):", ", ".join(f"{r:.2f}" for r in ratios))
    print("baseline / hookhub (cpu, per run):", ", ".join(f"{r:.2f}" for r in cpu_ratios))
    print(f"median ratio: wall {median(ratios):.2f}, cpu {median(cpu_ratios):.2f}")


if __name__ == "__main__":
    main()
