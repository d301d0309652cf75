"""The inbound request journal's group commits: who is in which group, and when each is told.

The journal's own write is replaced by one that records each group and waits for the test to
let it finish, so the order of commits and answers is under the test's control.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from hookhub.errors import Unavailable
from hookhub.inbound.journal import RequestJournal
from hookhub.store.inbound import LogEntry


class GatedJournal(RequestJournal):
    """Records each group written; each write waits until the test opens its gate."""

    def __init__(self) -> None:
        super().__init__(db=None, on_commit=self._count_commit)  # type: ignore[arg-type]
        self.groups: list[list[float]] = []
        self.gates: list[threading.Event] = []
        self.events: list[str] = []
        self.commits = 0
        self.fail_next = False
        self._next_id = 0

    def _count_commit(self) -> None:
        self.commits += 1

    def _start(self, batch: list[tuple[LogEntry, Any]]) -> asyncio.Future[None]:
        self.events.append(f"write {len(batch)}")  # on the event loop, in order with answers
        return super()._start(batch)

    def _write(self, entries: list[LogEntry], unlogged: dict[tuple[int, str], int]) -> None:
        gate = threading.Event()
        self.gates.append(gate)  # before the group: tests wait on groups, then open gates
        self.groups.append([entry.received_at for entry in entries])
        if not gate.wait(timeout=10):
            raise TimeoutError("the test never let this write finish")
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("disk full")
        for entry in entries:
            self._next_id += 1
            entry.id = self._next_id


def entry(number: int) -> LogEntry:
    # received_at carries the entry's number, to see which group it went into.
    return LogEntry(
        webhook_id=1, received_at=number, status="received", http_status=202, headers="[]", body=b""
    )


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    # A deadline, not a count of sleeps: on a loaded machine the write thread may be late.
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.001)


async def open_gate(journal: GatedJournal, index: int) -> None:
    """Let the ``index``-th write finish, once its thread has started it."""
    await until(lambda: len(journal.gates) > index)
    journal.gates[index].set()


class Answers:
    def __init__(self, journal: GatedJournal) -> None:
        self.journal = journal
        self.told: dict[int, BaseException | None] = {}
        self.ids: dict[int, int] = {}

    def add(self, number: int, then: Callable[[], Any] | None = None) -> None:
        item = entry(number)

        def logged(error: BaseException | None) -> None:
            self.journal.events.append(f"told {number}")
            self.told[number] = error
            self.ids[number] = item.id
            if then is not None:
                then()

        self.journal.add(item, logged)


async def test_entries_waiting_during_a_commit_form_the_next_group_in_arrival_order() -> None:
    journal = GatedJournal()
    answers = Answers(journal)
    answers.add(1)
    await until(lambda: len(journal.groups) == 1)
    for number in (2, 3, 4):
        answers.add(number)
    assert answers.told == {}  # nobody is answered before their commit
    await open_gate(journal, 0)
    await until(lambda: len(journal.groups) == 2)
    await open_gate(journal, 1)
    await until(lambda: len(answers.told) == 4)
    assert journal.groups == [[1], [2, 3, 4]]
    assert answers.ids == {1: 1, 2: 2, 3: 3, 4: 4}
    assert journal.commits == 2


async def test_the_next_group_is_written_while_the_last_one_is_answered() -> None:
    journal = GatedJournal()
    answers = Answers(journal)
    for number in range(1, 9):
        answers.add(number)
    await until(lambda: len(journal.groups) == 1)
    answers.add(9)
    answers.add(10)
    await open_gate(journal, 0)
    await until(lambda: len(answers.told) == 8)
    assert journal.events[:2] == ["write 8", "write 2"]
    await open_gate(journal, 1)
    await until(lambda: len(answers.told) == 10)
    assert journal.groups == [list(range(1, 9)), [9, 10]]


async def test_a_failed_commit_tells_its_group_and_the_next_group_goes_on() -> None:
    journal = GatedJournal()
    answers = Answers(journal)
    journal.fail_next = True
    answers.add(1)
    await until(lambda: len(journal.groups) == 1)
    answers.add(2)
    await open_gate(journal, 0)
    await until(lambda: len(journal.groups) == 2)
    await open_gate(journal, 1)
    await until(lambda: len(answers.told) == 2)
    assert isinstance(answers.told[1], RuntimeError)
    assert answers.told[2] is None
    assert journal.commits == 1


async def test_cancelled_flush_tells_everyone_waiting() -> None:
    journal = GatedJournal()
    answers = Answers(journal)
    answers.add(1)
    await until(lambda: len(journal.groups) == 1)
    answers.add(2)
    assert journal._task is not None
    journal._task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await journal._task
    assert isinstance(answers.told[1], Unavailable)
    assert isinstance(answers.told[2], Unavailable)
    journal.gates[0].set()  # let the worker thread finish
