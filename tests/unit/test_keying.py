"""Per-contact options as plain functions: which contact a body is about, how a burst merges."""

from __future__ import annotations

from typing import Any

from hookhub.outbound.keying import contact_of, keyed_types, merge_bodies


def _body(changes: dict[str, Any], at: str, **data: Any) -> dict[str, Any]:
    return {
        "type": "contact.updated",
        "timestamp": at,
        "data": {"contact_id": 7, "changes": changes, **data},
        "origin": {"type": "import", "id": at, "name": None},
    }


def _c(old: Any, new: Any) -> dict[str, Any]:
    return {"old": old, "new": new}


def test_the_merge_runs_from_the_first_old_to_the_last_new_value() -> None:
    first = _body({"A": _c(1, 2), "B": _c("x", "y"), "C": _c(None, "c")}, "t1", attributes={"A": 2})
    later = _body(
        {"A": _c(2, 3), "B": _c("y", "x"), "D": _c(False, True)}, "t2", attributes={"A": 3}
    )
    merged = merge_bodies(first, later)
    assert merged["data"]["changes"] == {"A": _c(1, 3), "C": _c(None, "c"), "D": _c(False, True)}
    assert merged["timestamp"] == "t2"  # the rest is the latest message's
    assert merged["origin"]["id"] == "t2"
    assert merged["data"]["attributes"] == {"A": 3}
    assert first["data"]["changes"]["A"] == _c(1, 2)  # the inputs are left alone


def test_bodies_without_changes_merge_to_the_latest() -> None:
    first = {"type": "email.opened", "timestamp": "t1", "data": {"contact_id": 7, "n": 1}}
    later = {"type": "email.opened", "timestamp": "t2", "data": {"contact_id": 7, "n": 2}}
    assert merge_bodies(first, later) == later


def test_the_contact_is_an_integer_contact_id() -> None:
    assert contact_of({"data": {"contact_id": 42}}) == 42
    for body in (
        {"data": {"contact_id": None}},
        {"data": {"contact_id": True}},
        {"data": {}},
        [],
        {},
    ):
        assert contact_of(body) is None


def test_keyed_types_are_the_ones_about_a_contact() -> None:
    kinds = keyed_types()
    assert {"contact.updated", "email.opened"} <= set(kinds)
    assert not {"list.deleted", "delivery.exhausted"} & set(kinds)
