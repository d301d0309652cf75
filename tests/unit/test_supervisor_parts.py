"""The supervisor's plain parts: restart delays, and what an error may show of itself."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import OperationalError

from hookhub.logs import describe_error
from hookhub.supervisor import Backoff


def test_backoff_doubles_up_to_its_ceiling_and_starts_over() -> None:
    backoff = Backoff(1.0, 30.0)
    assert [backoff.next() for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    backoff.reset()
    assert backoff.next() == 1


def test_describe_error_keeps_the_drivers_first_line_without_statement_or_parameters() -> None:
    wrapped = OperationalError(
        "UPDATE contacts SET email = ?", ("ada@example.com",), sqlite3.OperationalError("locked")
    )
    assert describe_error(wrapped) == "OperationalError: locked"
    wrapped.__cause__ = wrapped.orig  # as SQLAlchemy raises it: from the driver's error
    assert describe_error(wrapped) == "OperationalError: locked"
    wrapper = RuntimeError("The database is unreachable.")
    wrapper.__cause__ = wrapped
    assert describe_error(wrapper) == (
        "RuntimeError: The database is unreachable. (OperationalError: locked)"
    )
    assert "ada@example.com" not in describe_error(wrapped)


def test_describe_error_cuts_credentials_and_length() -> None:
    described = describe_error(RuntimeError("cannot reach postgresql://hookhub:hunter2@db/x"))
    assert described == "RuntimeError: cannot reach postgresql://…@db/x"
    assert len(describe_error(ValueError("x" * 1000))) < 220
    assert describe_error(KeyError()) == "KeyError"
