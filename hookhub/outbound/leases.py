"""A delivery worker's leases: claiming due deliveries, and giving back what it will not send.

A claim is one transaction: per-lane top-ups, then a claim across endpoints, then fresh
messages to fill batched endpoints' batches. Giving back never fails its caller: when the
database is away, the lease simply runs out and the delivery falls due again (it is not lost,
and it was not attempted, so nothing is acknowledged).

What this module must never do: write SQL (``hookhub.store.deliveries`` owns it), or give back
a delivery whose attempt may still be under way.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import Counter

from hookhub.config import Settings
from hookhub.logs import describe_error
from hookhub.outbound.lanes import Job
from hookhub.records.outbound import Endpoint
from hookhub.store.database import Database
from hookhub.store.deliveries import ClaimedDelivery, DeliveryStore
from hookhub.store.delivery_bodies import stored_bodies
from hookhub.store.delivery_keys import DeliveryKeys
from hookhub.store.endpoints import EndpointStore

__all__ = ["Leases", "default_worker_id"]

log = logging.getLogger("hookhub.worker")

SWEEP_EVERY = 30.0
"""Seconds between looks for an ordered contact whose next delivery nothing would release."""


def default_worker_id() -> str:
    """The lease owner's name: host, process and a random part (a restarted process differs)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{os.urandom(3).hex()}"


class Leases:
    def __init__(self, db: Database, settings: Settings, owner: str) -> None:
        self.db = db
        self.settings = settings
        self.owner = owner
        self._swept = 0.0

    def claim(
        self, now: float, refills: dict[int, int], limit: int, rooms: dict[int, int]
    ) -> tuple[list[tuple[Endpoint, Job]], dict[int, int]]:
        """Per-lane top-ups, then (with a limit) a claim across endpoints; one transaction.

        Answers the jobs with their endpoints, and how many were taken per endpoint.
        """
        lease_until = now + self.settings.lease_seconds
        owner = self.owner
        with self.db.write() as conn:
            store = DeliveryStore(conn)
            if now - self._swept >= SWEEP_EVERY:
                self._swept = now
                if swept := DeliveryKeys(conn).sweep(now):
                    log.warning("worker.ordering_repaired", extra={"count": swept})
            claimed = []
            for endpoint_id, room in refills.items():
                claimed += store.claim_for_endpoint(
                    endpoint_id=endpoint_id,
                    now=now,
                    lease_until=lease_until,
                    owner=owner,
                    limit=room,
                )
            if limit:
                busy = [eid for eid, left in rooms.items() if left == 0] + list(refills)
                claimed += store.claim_due(
                    now=now,
                    lease_until=lease_until,
                    owner=owner,
                    limit=limit,
                    exclude_endpoints=busy,
                    room=rooms,
                )
            if not claimed:
                return [], {}
            taken = Counter(c.endpoint_id for c in claimed)
            endpoints = EndpointStore(conn).get_many(list(taken))
            for endpoint in endpoints.values():
                if endpoint.batched:  # fill the batch with fresh messages not yet due
                    room = self.settings.batch_max_messages - taken[endpoint.id]
                    if room > 0:
                        claimed += store.claim_fresh(
                            endpoint_id=endpoint.id,
                            horizon=now + self.settings.batch_window,
                            lease_until=lease_until,
                            owner=owner,
                            limit=room,
                        )
            payloads = store.payloads([c.message_id for c in claimed])
            # Transformed endpoints' retries send the body their first attempt stored.
            retried = [
                c.id
                for c in claimed
                if c.attempt_count and c.endpoint_id in endpoints
                if endpoints[c.endpoint_id].transform is not None
            ]
            bodies = stored_bodies(conn, retried) if retried else {}
        jobs = [
            (endpoints[c.endpoint_id], _job(c, payloads, lease_until, bodies))
            for c in claimed
            if c.endpoint_id in endpoints and c.message_id in payloads
        ]
        return jobs, dict(taken)

    def release(self, ids: list[int], when: float) -> None:
        """Give back unattempted deliveries, due at ``when``; on failure, their leases expire."""
        try:
            with self.db.write() as conn:
                DeliveryStore(conn).release(ids, owner=self.owner, next_attempt_at=when)
        except Exception as exc:
            log.warning(
                "worker.release_failed",
                extra={"count": len(ids), "error": describe_error(exc)},
            )

    def release_all(self, now: float) -> None:
        """Give back everything still leased to this worker (it is stopping)."""
        try:
            with self.db.write() as conn:
                released = DeliveryStore(conn).release_owner(self.owner, next_attempt_at=now)
        except Exception as exc:
            log.warning("worker.release_failed", extra={"error": describe_error(exc)})
            return
        if released:
            log.info("worker.released", extra={"worker_id": self.owner, "count": released})


def _job(
    claimed: ClaimedDelivery,
    payloads: dict[str, tuple[str, bytes, float]],
    lease_until: float,
    bodies: dict[int, bytes],
) -> Job:
    event_type, payload, created_at = payloads[claimed.message_id]
    if claimed.payload is not None:  # a collapsed burst: the merged message
        payload = claimed.payload.encode()
    return Job(
        delivery_id=claimed.id,
        message_id=claimed.message_id,
        event_type=event_type,
        payload=payload,
        contact_id=claimed.contact_id,
        created_at=created_at,
        attempt_count=claimed.attempt_count,
        lease_until=lease_until,
        body=bodies.get(claimed.id),
    )
