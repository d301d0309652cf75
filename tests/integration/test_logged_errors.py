"""A failing statement's error (what is raised, and so what could be logged) names the SQL but
never the values bound to it: those are contact data and secrets."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from hookhub.services import Services
from hookhub.store.schema import contacts

EMAIL = "private.person.4711@example.com"


def test_a_failing_query_shows_no_bound_value(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(UTC)
    row = {
        "email": EMAIL,
        "attributes": '{"PHONE": "+33 6 12 34 56 78"}',
        "created_at": now,
        "updated_at": now,
        "unsubscribed": False,
    }
    with services.db.write() as conn:
        conn.execute(insert(contacts).values(row))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(IntegrityError) as caught, services.db.write() as conn:
        conn.execute(insert(contacts).values(row))
    message = str(caught.value)
    assert "INSERT INTO contacts" in message
    assert "SQL parameters hidden" in message
    # PostgreSQL's own DETAIL names the conflicting key (the email); no other bound value
    # (the attributes) appears anywhere.
    assert "+33 6" not in message
    assert "PHONE" not in message
    assert EMAIL not in caplog.text
