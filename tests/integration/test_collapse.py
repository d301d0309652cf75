"""Collapsing bursts (``collapse``) with an injected clock, against a real receiver on loopback;
and the API's validation of ``ordering`` and ``collapse``. Both backends.

A burst of contact.updated about one contact within the window becomes one delivery, held
until the window ends, whose changes run from the first old value to the last new one; a
delivery already attempted, or older than the window, is never merged into.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from sqlalchemy import select, update

from hookhub import __version__
from hookhub.clock import FakeClock
from hookhub.core.jsoncodec import isoformat
from hookhub.core.urlguard import DestinationPolicy
from hookhub.outbound.http11 import Http11Transport
from hookhub.outbound.outbox import build_message
from hookhub.outbound.worker import DeliveryWorker
from hookhub.retention import RetentionService
from hookhub.services import Services
from hookhub.store.deliveries import DeliveryStore
from hookhub.store.schema import deliveries
from tests.support.delivery import eventually, verify
from tests.support.receiver import running_receiver

API = "/api/v1"
COLLAPSE = {"event_types": ["contact.updated"], "window_ms": 2000}


def _update(services: Services, clock: FakeClock, contact: int, changes: dict[str, Any]) -> str:
    """Write a contact.updated about ``contact`` at the clock's time; answers its id."""
    data = {
        "contact_id": contact,
        "email": f"c{contact}@example.com",
        "changes": changes,
        "attributes": {name: change["new"] for name, change in changes.items()},
    }
    message = build_message("contact.updated", data, clock.datetime())
    with services.db.write() as conn:
        services.outbox.writer(conn).write([message])
    return message.id


def _rows(services: Services, endpoint_id: int) -> list[dict[str, Any]]:
    with services.db.read() as conn:
        query = (
            select(deliveries)
            .where(deliveries.c.endpoint_id == endpoint_id)
            .order_by(deliveries.c.id)
        )
        return [dict(row._mapping) for row in conn.execute(query)]


def _statuses(services: Services, endpoint_id: int) -> list[str]:
    return [row["status"] for row in _rows(services, endpoint_id)]


def _change(old: str, new: str) -> dict[str, str]:
    return {"old": old, "new": new}


def _merged(payload: str | None) -> Any:
    assert payload is not None
    return orjson.loads(payload)


@contextlib.asynccontextmanager
async def _worker(services: Services, clock: FakeClock) -> AsyncIterator[DeliveryWorker]:
    """A delivery worker whose every "now" is ``clock``'s."""
    settings = services.settings
    transport = Http11Transport(
        policy=DestinationPolicy(settings.allow_private_destinations),
        user_agent=f"hookhub/{__version__}",
    )
    worker = DeliveryWorker(services.db, services.outbox, settings, transport, clock=clock.now)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
        await transport.close()


async def test_a_burst_becomes_one_delivery_at_the_windows_end(services: Services) -> None:
    clock = FakeClock(time.time())  # signatures are checked against the real time
    start = clock.now()
    async with running_receiver() as receiver:
        endpoint = services.endpoints.create(
            {"url": receiver.url, "events": ["contact.updated"], "collapse": COLLAPSE}
        )
        first = _update(
            services,
            clock,
            7,
            {"FIRSTNAME": _change("Ada", "Bea"), "LASTNAME": _change("L1", "L2")},
        )
        clock.advance(0.5)
        _update(services, clock, 7, {"FIRSTNAME": _change("Bea", "Cy")})
        clock.advance(0.5)
        last_at = clock.datetime()
        _update(services, clock, 7, {"LASTNAME": _change("L2", "L1"), "CITY": _change("", "Oz")})
        _update(services, clock, 8, {"FIRSTNAME": _change("Bo", "Al")})  # another contact
        rows = _rows(services, endpoint.id)
        assert [r["status"] for r in rows] == ["pending", "collapsed", "collapsed", "pending"]
        assert rows[0]["next_attempt_at"] == pytest.approx(start + 2.0)  # held for the burst
        with services.db.write() as conn:  # nothing is due before the window ends
            due = DeliveryStore(conn).claim_due(
                now=start + 1.9, lease_until=start + 60, owner="probe", limit=10
            )
        assert due == []

        clock.set(start + 3.1)  # both bursts' windows are over
        async with _worker(services, clock):
            await receiver.wait_for(2)
            await eventually(
                lambda: (
                    _statuses(services, endpoint.id)
                    == ["succeeded", "collapsed", "collapsed", "succeeded"]
                )
            )
    assert len(receiver.requests) == 2
    by_contact = {verify(endpoint.secret, r)["data"]["contact_id"]: r for r in receiver.requests}
    body = verify(endpoint.secret, by_contact[7])
    assert body["type"] == "contact.updated"
    assert body["timestamp"] == isoformat(last_at)  # the last message's
    # From the first old value to the last new one; LASTNAME went back, so it did not change.
    assert body["data"]["changes"] == {"FIRSTNAME": _change("Ada", "Cy"), "CITY": _change("", "Oz")}
    assert body["data"]["attributes"] == {"LASTNAME": "L1", "CITY": "Oz"}
    assert by_contact[7].headers["webhook-id"] == first  # the burst's first message
    eight = verify(endpoint.secret, by_contact[8])
    assert eight["data"]["changes"] == {"FIRSTNAME": _change("Bo", "Al")}


async def test_an_attempted_delivery_is_never_merged_into(services: Services) -> None:
    clock = FakeClock(time.time())  # signatures are checked against the real time
    start = clock.now()
    async with running_receiver() as receiver:
        endpoint = services.endpoints.create(
            {"url": receiver.url, "events": ["contact.updated"], "collapse": COLLAPSE}
        )
        _update(services, clock, 7, {"FIRSTNAME": _change("A", "B")})
        clock.set(start + 2.01)  # messages keep microseconds: not exactly the window's end
        async with _worker(services, clock):
            await receiver.wait_for(1)
            await eventually(lambda: _statuses(services, endpoint.id) == ["succeeded"])
            # Within the first message's window, but its delivery went: a new burst starts.
            clock.set(start + 1.0)
            _update(services, clock, 7, {"FIRSTNAME": _change("B", "C")})
            assert _statuses(services, endpoint.id) == ["succeeded", "pending"]
            clock.set(start + 3.1)
            await receiver.wait_for(2)
    bodies = [verify(endpoint.secret, r)["data"]["changes"] for r in receiver.requests]
    assert bodies == [{"FIRSTNAME": _change("A", "B")}, {"FIRSTNAME": _change("B", "C")}]


def test_a_message_after_the_window_starts_a_new_burst(services: Services) -> None:
    clock = FakeClock(time.time())  # signatures are checked against the real time
    endpoint = services.endpoints.create(
        {"url": "http://127.0.0.1:9/hook", "events": ["contact.updated"], "collapse": COLLAPSE}
    )
    _update(services, clock, 7, {"FIRSTNAME": _change("A", "B")})
    clock.advance(2.5)  # the first is still pending (no worker), but its window is over
    _update(services, clock, 7, {"FIRSTNAME": _change("B", "C")})
    clock.advance(0.1)
    _update(services, clock, 7, {"FIRSTNAME": _change("C", "D")})
    rows = _rows(services, endpoint.id)
    assert [r["status"] for r in rows] == ["pending", "pending", "collapsed"]
    assert rows[0]["payload"] is None  # the first, alone, sends its message as it is
    assert _merged(rows[1]["payload"])["data"]["changes"] == {"FIRSTNAME": _change("B", "D")}


def test_ordered_and_collapsing_endpoint_merges_only_into_the_newest(services: Services) -> None:
    clock = FakeClock(time.time())  # signatures are checked against the real time
    endpoint = services.endpoints.create(
        {
            "url": "http://127.0.0.1:9/hook",
            "events": ["contact.updated", "contact.unsubscribed"],
            "collapse": COLLAPSE,
            "ordering": "contact",
        }
    )
    _update(services, clock, 7, {"FIRSTNAME": _change("A", "B")})
    clock.advance(0.1)
    data = {"contact_id": 7, "email": "c7@example.com"}
    message = build_message("contact.unsubscribed", data, clock.datetime())
    with services.db.write() as conn:
        services.outbox.writer(conn).write([message])
    clock.advance(0.1)
    # Not merged into the first update: that would send it before the unsubscribe.
    _update(services, clock, 7, {"FIRSTNAME": _change("B", "C")})
    clock.advance(0.1)
    _update(services, clock, 7, {"FIRSTNAME": _change("C", "D")})
    rows = _rows(services, endpoint.id)
    assert [r["status"] for r in rows] == ["pending", "waiting", "waiting", "collapsed"]
    assert _merged(rows[2]["payload"])["data"]["changes"] == {"FIRSTNAME": _change("B", "D")}


def test_a_delivered_burst_goes_with_retention(services: Services) -> None:
    """A collapsed row is final: a merged message may go (its content is in the burst's
    delivery); the burst's first message goes once that delivery is final."""
    clock = FakeClock(time.time() - 40 * 86400)
    endpoint = services.endpoints.create(
        {"url": "http://127.0.0.1:9/hook", "events": ["contact.updated"], "collapse": COLLAPSE}
    )
    _update(services, clock, 7, {"FIRSTNAME": _change("A", "B")})
    _update(services, clock, 7, {"FIRSTNAME": _change("B", "C")})
    service = RetentionService(services.db, services.settings)
    assert service.purge(requests=False).messages == 1  # the merged one
    assert _statuses(services, endpoint.id) == ["pending"]
    with services.db.write() as conn:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.status == "pending")
            .values(status="succeeded", next_attempt_at=None)
        )
    assert service.purge(requests=False).messages == 1
    assert _rows(services, endpoint.id) == []


# -- the API ------------------------------------------------------------------------------------


def _create(client: Any, **fields: Any) -> Any:
    body = {"url": "https://hooks.example.com/in", "events": ["contact.updated"], **fields}
    return client.post(f"{API}/webhooks", json=body)


def test_the_api_shows_and_clears_ordering_and_collapse(client: Any) -> None:
    created = _create(client, ordering="contact", collapse=COLLAPSE)
    assert created.status_code == 201, created.text
    hook = created.json()
    assert (hook["ordering"], hook["collapse"]) == ("contact", COLLAPSE)
    shown = client.get(f"{API}/webhooks/{hook['id']}").json()
    assert (shown["ordering"], shown["collapse"]) == ("contact", COLLAPSE)
    wider = {"event_types": ["contact.updated", "email.opened"], "window_ms": 5}
    patched = client.patch(f"{API}/webhooks/{hook['id']}", json={"collapse": wider}).json()
    assert (patched["ordering"], patched["collapse"]) == ("contact", wider)
    cleared = client.patch(
        f"{API}/webhooks/{hook['id']}", json={"ordering": None, "collapse": None}
    ).json()
    assert (cleared["ordering"], cleared["collapse"]) == (None, None)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"ordering": "global"}, "ordering"),
        ({"collapse": {"event_types": ["contact.nope"], "window_ms": 10}}, "collapse.event_types"),
        ({"collapse": {"event_types": ["list.deleted"], "window_ms": 10}}, "collapse.event_types"),
        ({"collapse": {"event_types": [], "window_ms": 10}}, "collapse.event_types"),
        ({"collapse": {"event_types": ["contact.updated"], "window_ms": 0}}, "collapse.window_ms"),
        (
            {"collapse": {"event_types": ["contact.updated"], "window_ms": 3_600_001}},
            "collapse.window_ms",
        ),
        ({"collapse": {"event_types": ["contact.updated"]}}, "collapse.window_ms"),
        (
            {"collapse": {"event_types": ["contact.updated"], "window_ms": 1.5}},
            "collapse.window_ms",
        ),
        ({"collapse": ["contact.updated"]}, "collapse"),
    ],
)
def test_the_api_refuses_bad_options_naming_the_field(
    client: Any, fields: dict[str, Any], field: str
) -> None:
    hook = _create(client).json()
    for response in (
        _create(client, **fields),
        client.patch(f"{API}/webhooks/{hook['id']}", json=fields),
    ):
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert field in orjson.dumps(error).decode(), error
