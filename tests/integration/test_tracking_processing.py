"""Applying tracking hits: two appliers at once (two workers on PostgreSQL) apply each hit once;
a batch that fails rolls back and its hits wait; the processor loop applies what the receiver
stored, woken or polling."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from sqlalchemy import func, select

from hookhub.email.tracking_processor import TrackingApplier, TrackingProcessor
from hookhub.services import Services
from hookhub.store.schema import messages
from hookhub.store.schema_email import tracking_hits
from hookhub.store.tracking import TrackingHit, TrackingHitStore
from tests.support.tracking import payloads, sent_email


def _store_hits(services: Services, email_ids: list[int], per_email: int) -> int:
    now = time.time()
    hits = [
        TrackingHit("o", email_id, None, now, "Mozilla/5.0 (X11) Firefox/120.0", "127.0.0.1")
        for email_id in email_ids
        for _ in range(per_email)
    ]
    with services.db.write() as conn:
        TrackingHitStore(conn).append(hits)
    return len(hits)


def _count(services: Services, table: object, where: object = None) -> int:
    query = select(func.count()).select_from(table)  # type: ignore[arg-type]
    if where is not None:
        query = query.where(where)  # type: ignore[arg-type]
    with services.db.read() as conn:
        return int(conn.execute(query).scalar_one())


def test_two_appliers_apply_each_hit_once(services: Services) -> None:
    email_ids = [sent_email(services, f"p{n}@example.com") for n in range(20)]
    stored = _store_hits(services, email_ids, 60)
    appliers = [TrackingApplier(services.db, services.outbox, batch=100) for _ in range(2)]
    errors: list[BaseException] = []

    def drain(applier: TrackingApplier) -> None:
        try:
            while applier.apply_batch():
                pass
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=drain, args=(a,)) for a in appliers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert sum(a.applied for a in appliers) == stored
    assert _count(services, tracking_hits) == 0
    assert _count(services, messages, messages.c.type == "email.opened") == stored
    firsts = [p for p in payloads(services, "email.opened") if p["first"]]
    assert sorted(p["email_id"] for p in firsts) == sorted(email_ids)


def test_a_failed_batch_leaves_its_hits(services: Services) -> None:
    email_id = sent_email(services)
    _store_hits(services, [email_id], 3)
    applier = TrackingApplier(services.db, services.outbox)

    class Boom(Exception):
        pass

    def explode(*_args: object, **_kwargs: object) -> None:
        raise Boom

    original = applier._detail
    applier._detail = explode  # type: ignore[method-assign,assignment]
    with pytest.raises(Boom):
        applier.apply_batch()
    applier._detail = original  # type: ignore[method-assign]
    assert _count(services, tracking_hits) == 3
    assert payloads(services, "email.opened") == []
    assert applier.apply_batch() == 3
    assert len(payloads(services, "email.opened")) == 3


async def test_the_loop_applies_when_woken_and_by_polling(services: Services) -> None:
    email_id = sent_email(services)
    processor = TrackingProcessor(TrackingApplier(services.db, services.outbox), poll_interval=0.1)
    task = asyncio.create_task(processor.run())
    try:
        await asyncio.to_thread(_store_hits, services, [email_id], 2)
        processor.wake()
        deadline = time.monotonic() + 10
        while len(await asyncio.to_thread(payloads, services, "email.opened")) < 2:
            assert time.monotonic() < deadline, "hits were not applied"
            await asyncio.sleep(0.05)
        assert processor.heartbeat.errors == {}
    finally:
        processor.stop()
        await asyncio.wait_for(task, 10)
