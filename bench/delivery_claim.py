"""The claim path alone: what a worker pays to take ``room`` deliveries for one busy endpoint.

Before the per-endpoint room was passed to the claim, a worker whose lane had room for a few
deliveries still leased a whole batch (256), read all their bodies, and gave back the ones the
lane could not take in a second transaction. This times both ways on the same SQLite file, one
after the other, many times, in one process (so both share whatever else the machine is doing):

- ``lease then give back``: ``claim_due(limit=256)`` + ``payloads`` of all, then ``release``
  of all but ``room`` (what DeliveryWorker did for a lane with little room);
- ``lease within room``: ``claim_due(limit=256, room={endpoint: room})`` + ``payloads``.

Between rounds the leased rows are made due again (not timed).

    .venv/bin/python bench/delivery_claim.py [--room 20] [--rounds 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench_delivery import prefill
from common import machine_info, median, print_machine
from sqlalchemy import update

from hookhub.store.database import Database
from hookhub.store.deliveries import DeliveryStore
from hookhub.store.schema import deliveries

OWNER = "bench"
ENDPOINT = 1  # the only endpoint of the prefilled database


def one_round(db: Database, room: int, within: bool) -> tuple[float, list[int]]:
    """CPU seconds (this thread) to take ``room`` deliveries; the ids leased meanwhile."""
    started = time.thread_time()
    now = time.time()
    with db.write() as conn:
        store = DeliveryStore(conn)
        claimed = store.claim_due(
            now=now,
            lease_until=now + 45,
            owner=OWNER,
            limit=256,
            room={ENDPOINT: room} if within else None,
        )
        store.payloads([c.message_id for c in claimed])
    if not within and len(claimed) > room:
        with db.write() as conn:
            extra = [c.id for c in claimed[room:]]
            DeliveryStore(conn).release(extra, owner=OWNER, next_attempt_at=now + 0.25)
    return time.thread_time() - started, [c.id for c in claimed]


def reset(db: Database, ids: list[int]) -> None:
    """Make the rows of a round due again, unowned (not timed)."""
    with db.write() as conn:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(ids))
            .values(lease_owner=None, next_attempt_at=0.0)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--room", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args()
    print_machine(machine_info(None))
    labels = {False: "lease then give back", True: "lease within room"}
    timings: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="hookhub-bench-claim-") as tmp:
        url = f"sqlite:///{tmp}/claim.db"
        prefill(url, "http://127.0.0.1:9/hook", args.messages, 1024, Path(tmp) / "m.jsonl")
        db = Database(url)
        try:
            for _ in range(args.rounds):
                for within in (False, True):
                    seconds, ids = one_round(db, args.room, within)
                    timings[within].append(seconds)
                    reset(db, ids)
        finally:
            db.dispose()
    print(f"\nclaiming {args.room} deliveries for a lane, {args.rounds} rounds each, CPU time:")
    for within, values in timings.items():
        print(f"  {labels[within]:<22} median {median(values) * 1e6:8.0f} us per claim")
    before, after = median(timings[False]), median(timings[True])
    print(
        f"  saved per claim: {(before - after) * 1e6:.0f} us ({before / after:.1f}x);"
        f" per delivery at {args.room} a claim: {(before - after) / args.room * 1e6:.0f} us"
    )


if __name__ == "__main__":
    main()
