"""Per-contact ordering (``ordering: "contact"``) against a real receiver on loopback.

One contact's messages arrive one at a time and in the order they were written: the next waits
until the one before succeeded or was exhausted (retries included), while other contacts'
messages flow meanwhile; messages about no contact are not held. Both backends.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from sqlalchemy import select

from hookhub.services import Services
from hookhub.store.schema import deliveries
from tests.support.delivery import create_contact, eventually, running_worker, tuned_services
from tests.support.receiver import Received, running_receiver

FAST_RETRIES = {"retry_schedule": "0.3,0.3,0.3", "retry_jitter": 0, "poll_interval": 0.05}


def _rename(services: Services, contact_id: int, name: str) -> None:
    with services.crm.transaction() as crm:
        crm.update_contact(crm.find_contact(contact_id, lock=True), attributes={"FIRSTNAME": name})


def _label(request: Received) -> tuple[int, str]:
    """(contact, FIRSTNAME it was given) of a contact.created or contact.updated body."""
    data = request.json()["data"]
    return data["contact_id"], data["attributes"].get("FIRSTNAME", "")


def _statuses(services: Services, endpoint_id: int) -> dict[str, int]:
    with services.db.read() as conn:
        rows = conn.execute(
            select(deliveries.c.status).where(deliveries.c.endpoint_id == endpoint_id)
        ).scalars()
        counts: dict[str, int] = {}
        for status in rows:
            counts[status] = counts.get(status, 0) + 1
        return counts


class OrderedReceiver:
    """Fails contact A's second message ``failures`` times; records what arrived, when it
    succeeded, and how many requests about one contact were open at once."""

    def __init__(self, failing: tuple[int, str] | None = None, failures: int = 3) -> None:
        self.failing = failing
        self.failures = failures
        self.log: list[tuple[tuple[int, str], int]] = []  # (label, status answered)
        self.open: dict[int, int] = {}
        self.most_open = 0

    async def __call__(self, request: Received) -> web.StreamResponse:
        label = _label(request)
        contact = label[0]
        self.open[contact] = self.open.get(contact, 0) + 1
        self.most_open = max(self.most_open, self.open[contact])
        try:
            await asyncio.sleep(0.005)
            status = 200
            if label == self.failing and self.failures:
                self.failures -= 1
                status = 500
            self.log.append((label, status))
            return web.Response(status=status)
        finally:
            self.open[contact] -= 1

    def succeeded(self) -> list[tuple[int, str]]:
        return [label for label, status in self.log if status == 200]


async def test_a_contacts_next_message_waits_for_the_retried_one(db_url: str) -> None:
    with tuned_services(db_url, **FAST_RETRIES) as services:
        a = create_contact(services, "a@example.com", FIRSTNAME="A1")
        b = create_contact(services, "b@example.com", FIRSTNAME="B1")
        script = OrderedReceiver(failing=(a, "A2"), failures=3)
        async with running_receiver(script) as receiver:
            endpoint = services.endpoints.create(
                {"url": receiver.url, "events": ["contact.updated"], "ordering": "contact"}
            )
            for name in ("A1b", "A2", "A3"):
                _rename(services, a, name)
            for name in ("B2", "B3", "B4"):
                _rename(services, b, name)
            assert _statuses(services, endpoint.id) == {"pending": 2, "waiting": 4}
            async with running_worker(services):
                await receiver.wait_for(9, timeout=30)  # 6 messages, A2 three times more
                await eventually(lambda: _statuses(services, endpoint.id) == {"succeeded": 6})
        labels = [label for label, _ in script.log]
        assert [x for x in labels if x[0] == a] == [(a, "A1b"), *[(a, "A2")] * 4, (a, "A3")]
        assert [x for x in labels if x[0] == b] == [(b, "B2"), (b, "B3"), (b, "B4")]
        a2_done = script.log.index(((a, "A2"), 200))
        # A's third came after A's second succeeded; B's all went while A2 was being retried.
        assert labels.index((a, "A3")) > a2_done
        assert labels.index((b, "B4")) < a2_done
        assert script.most_open == 1


async def test_an_exhausted_message_releases_the_next(db_url: str) -> None:
    with tuned_services(db_url, **FAST_RETRIES) as services:
        a = create_contact(services, "a@example.com", FIRSTNAME="A1")
        script = OrderedReceiver(failing=(a, "A2"), failures=99)
        async with running_receiver(script) as receiver:
            endpoint = services.endpoints.create(
                {"url": receiver.url, "events": ["contact.updated"], "ordering": "contact"}
            )
            for name in ("A2", "A3"):
                _rename(services, a, name)
            async with running_worker(services):
                await eventually(
                    lambda: _statuses(services, endpoint.id) == {"exhausted": 1, "succeeded": 1}
                )
        labels = [label for label, _ in script.log]
        assert labels == [(a, "A2")] * 4 + [(a, "A3")]  # four attempts, then the next


async def test_messages_about_no_contact_are_not_held(db_url: str) -> None:
    with tuned_services(db_url, **FAST_RETRIES) as services:
        hold = asyncio.Event()

        async def slow_contacts(request: Received) -> web.StreamResponse:
            if request.json()["type"] == "contact.created":
                await asyncio.wait_for(hold.wait(), 20)
            return web.Response(status=200)

        async with running_receiver(slow_contacts) as receiver:
            endpoint = services.endpoints.create(
                {
                    "url": receiver.url,
                    "events": ["contact.created", "list.deleted"],
                    "ordering": "contact",
                }
            )
            create_contact(services, "a@example.com")
            with services.crm.transaction() as crm:
                lists = [crm.lists.create(name, crm.now).id for name in ("one", "two")]
            with services.crm.transaction() as crm:
                for list_id in lists:
                    crm.delete_list(list_id)
            async with running_worker(services):
                # Both lists arrive while the contact's message is still being answered.
                await receiver.wait_for(3)
                kinds = sorted(r.json()["type"] for r in receiver.requests)
                assert kinds == ["contact.created", "list.deleted", "list.deleted"]
                hold.set()
                await eventually(lambda: _statuses(services, endpoint.id) == {"succeeded": 3})
        with services.db.read() as conn:
            keys = conn.execute(
                select(deliveries.c.contact_id).where(deliveries.c.endpoint_id == endpoint.id)
            ).scalars()
            assert sorted(keys, key=lambda k: k is None)[-2:] == [None, None]


async def test_two_workers_never_send_one_contacts_messages_at_once(db_url: str) -> None:
    with tuned_services(db_url, **FAST_RETRIES) as services:
        contacts = [create_contact(services, f"c{n}@example.com", FIRSTNAME="v0") for n in range(8)]
        script = OrderedReceiver()
        async with running_receiver(script) as receiver:
            endpoint = services.endpoints.create(
                {"url": receiver.url, "events": ["contact.updated"], "ordering": "contact"}
            )
            for step in range(1, 6):
                for contact in contacts:
                    _rename(services, contact, f"v{step}")
            async with running_worker(services), running_worker(services):
                await eventually(lambda: _statuses(services, endpoint.id) == {"succeeded": 40})
        assert script.most_open == 1
        for contact in contacts:
            names = [name for c, name in script.succeeded() if c == contact]
            assert names == [f"v{step}" for step in range(1, 6)]


def test_ordering_is_shown_and_cleared(services: Services) -> None:
    endpoint = services.endpoints.create(
        {"url": "http://127.0.0.1:9/hook", "events": ["*"], "ordering": "contact"}
    )
    assert services.endpoints.get(endpoint.id).to_api()["ordering"] == "contact"
    cleared = services.endpoints.update(endpoint.id, {"ordering": None})
    assert cleared.to_api()["ordering"] is None


def test_erasure_cancels_a_contacts_waiting_deliveries(services: Services) -> None:
    from hookhub.crm.erasure import ContactEraser

    a = create_contact(services, "a@example.com", FIRSTNAME="A1")
    endpoint = services.endpoints.create(
        {"url": "http://127.0.0.1:9/hook", "events": ["contact.updated"], "ordering": "contact"}
    )
    for name in ("A2", "A3", "A4"):
        _rename(services, a, name)
    assert _statuses(services, endpoint.id) == {"pending": 1, "waiting": 2}
    counts = ContactEraser(services.crm).erase(a)
    assert counts["deliveries_cancelled"] == 3
    assert _statuses(services, endpoint.id) == {"cancelled": 3}
