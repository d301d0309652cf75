"""Property-based: arbitrary JSON thrown at every write endpoint, on each backend, never gets a
5xx, and a rejected request leaves every table as it was.

Bodies are either arbitrary bytes, arbitrary JSON documents, or the endpoint's own fields with
arbitrary JSON-ish values in each (huge integers, NaN and Infinity, deep nesting, NUL characters,
lone surrogates, any Unicode), mixed with valid values so that requests get past the first check.
Bodies are serialized by hand: ``\\ud800`` escapes, ``NaN`` and integers past 64 bits are all
things clients really send.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import RowCounts

EXAMPLES = 120
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- values -----------------------------------------------------------------------------------

any_char = st.characters(exclude_categories=())  # includes lone surrogates
tricky_text = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00@example.com",
        "\ud800",
        "\udfff@example.com",
        "ada@example.com",
        " ADA@Example.COM ",
        "grace@example.com",
        "new@example.com",
        "a@b",
        "@",
        "1",
        "²",
        "-1",
        "9" * 30,
        "NaN",
        "null",
        "x" * 300,
        "é" * 5000,
        "\u202eevil",
        "2026-01-15",
        "2026-01-15T09:30:00Z",
        "cus_1",
        "VIP",
    ]
)
texts = st.one_of(tricky_text, st.text(any_char, max_size=40))
integers = st.one_of(
    st.integers(),
    st.sampled_from([0, 1, 2, -1, 2**63 - 1, 2**63, -(2**63), 2**64, 10**30, -(10**400)]),
)
floats = st.floats(allow_nan=True, allow_infinity=True)
scalars = st.one_of(st.none(), st.booleans(), integers, floats, texts)


def _nest(depth: int, as_dict: bool) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"k": value} if as_dict else [value]
    return value


deep = st.builds(_nest, st.integers(1, 400), st.booleans())
json_values = st.one_of(
    st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=5), st.dictionaries(texts, children, max_size=5)
        ),
        max_leaves=15,
    ),
    deep,
)


def mostly(good: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually a plausible value, so that requests reach the domain rules; else anything."""
    return st.sampled_from([True, True, True, False]).flatmap(lambda plain: good if plain else odd)


attribute_names = mostly(
    st.sampled_from(["AGE", "age", "VIP", "BIRTHDAY", "PLAN", "email", "EXT_ID", "new_attr"]),
    texts,
)
attribute_values = mostly(
    st.one_of(
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(["2026-01-15", "gold", "", None]),
    ),
    json_values,
)
attributes = mostly(st.dictionaries(attribute_names, attribute_values, max_size=6), json_values)
emails = mostly(
    st.sampled_from(
        ["ada@example.com", " GRACE@example.com", "new@example.com", "other@example.org"]
    ),
    st.one_of(tricky_text, json_values),
)
ids = mostly(st.sampled_from([1, 2, 3, 99]), json_values)
id_lists = mostly(st.lists(ids, max_size=4), json_values)


def fields(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[Any]:
    """An object with the endpoint's fields; sometimes a field too many or too few, or any JSON."""
    shaped = st.fixed_dictionaries(required, optional=optional)
    odd = st.one_of(
        st.fixed_dictionaries(required, optional={**optional, "unexpected": json_values}),
        st.fixed_dictionaries({}, optional={**required, **optional}),
        json_values,
    )
    return mostly(shaped, odd)


contact_fields = {
    "email": emails,
    "attributes": attributes,
    "list_ids": id_lists,
    "ext_id": mostly(st.sampled_from(["cus_1", "cus_2", None]), st.one_of(texts, json_values)),
    "unsubscribed": mostly(st.booleans(), json_values),
}


def without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


identifiers = {
    "email": emails,
    "contact_id": ids,
    "ext_id": mostly(st.sampled_from(["cus_1", "cus_new"]), texts),
}
bodies: dict[str, st.SearchStrategy[Any]] = {
    "contact": fields({"email": emails}, {k: v for k, v in contact_fields.items() if k != "email"}),
    "contact_patch": fields({}, {**contact_fields, "unlink_list_ids": id_lists}),
    "list": fields(
        {"name": mostly(st.sampled_from(["VIP", " New ", "Leads"]), st.one_of(texts, json_values))},
        {},
    ),
    "members": fields(
        {}, {"emails": mostly(st.lists(emails, max_size=4), json_values), "contact_ids": id_lists}
    ),
    "event": fields(
        {
            "event_name": mostly(
                st.sampled_from(["order_paid", "a-b_C"]), st.one_of(texts, json_values)
            ),
            "identifiers": mostly(
                st.one_of(
                    st.fixed_dictionaries({key: value}, optional=without(identifiers, key))
                    for key, value in identifiers.items()
                ),
                st.one_of(st.fixed_dictionaries({}, optional=identifiers), json_values),
            ),
        },
        {
            "contact_properties": attributes,
            "event_properties": mostly(
                st.dictionaries(texts, json_values, max_size=4), json_values
            ),
            "event_date": mostly(
                st.sampled_from(
                    ["2026-01-15T09:30:00+01:00", "2026-01-15", "0001-01-01T00:00:00+01:00"]
                ),
                st.one_of(texts, json_values),
            ),
        },
    ),
    "attribute": fields(
        {
            "name": attribute_names,
            "type": mostly(st.sampled_from(["string", "number", "boolean", "date"]), json_values),
        },
        {},
    ),
}


def encoded(body: Any) -> st.SearchStrategy[bytes]:
    return st.just(json.dumps(body, allow_nan=True).encode())


def payloads(kind: str) -> st.SearchStrategy[bytes]:
    """JSON text of a body for ``kind``, or now and then arbitrary bytes."""
    return st.one_of(
        bodies[kind].flatmap(encoded), bodies[kind].flatmap(encoded), st.binary(max_size=64)
    )


refs = mostly(st.sampled_from(["1", "2", "ada@example.com", "GRACE@example.com"]), texts).filter(
    bool
)
list_ids = mostly(
    st.sampled_from(["1", "2", "99"]), st.one_of(st.sampled_from(["0", "-1", str(2**63)]), texts)
).filter(bool)


def path_part(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


# -- the property -----------------------------------------------------------------------------


@pytest.fixture
def seeded(client: Any) -> Any:
    """Typed attributes, two lists and two contacts, so that valid parts of a body can succeed."""
    for name, kind in [
        ("AGE", "number"),
        ("VIP", "boolean"),
        ("BIRTHDAY", "date"),
        ("PLAN", "string"),
    ]:
        assert (
            client.post("/api/v1/attributes", json={"name": name, "type": kind}).status_code == 201
        )
    for name in ("VIP", "Leads"):
        assert client.post("/api/v1/lists", json={"name": name}).status_code == 201
    ada = {
        "email": "ada@example.com",
        "ext_id": "cus_1",
        "list_ids": [1],
        "attributes": {"AGE": 36},
    }
    assert client.post("/api/v1/contacts", json=ada).status_code == 201
    assert client.post("/api/v1/contacts", json={"email": "grace@example.com"}).status_code == 201
    return client


def send(client: Any, row_counts: RowCounts, method: str, path: str, body: bytes | None) -> None:
    before = row_counts()
    headers = {"content-type": "application/json"}
    response = client.request(method, path, content=body, headers=headers)
    event(f"{method} answered {response.status_code}")  # see --hypothesis-show-statistics
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"code", "message", "details"}
        assert row_counts() == before, (response.status_code, response.text)


@fuzz
@given(body=payloads("contact"), upsert=st.booleans())
def test_create_contact_never_fails_with_5xx(
    seeded: Any, row_counts: RowCounts, body: bytes, upsert: bool
) -> None:
    path = "/api/v1/contacts?upsert=true" if upsert else "/api/v1/contacts"
    send(seeded, row_counts, "POST", path, body)


@fuzz
@given(ref=refs, body=payloads("contact_patch"))
def test_patch_contact_never_fails_with_5xx(
    seeded: Any, row_counts: RowCounts, ref: str, body: bytes
) -> None:
    send(seeded, row_counts, "PATCH", f"/api/v1/contacts/{path_part(ref)}", body)


@fuzz
@given(body=payloads("list"))
def test_create_list_never_fails_with_5xx(seeded: Any, row_counts: RowCounts, body: bytes) -> None:
    send(seeded, row_counts, "POST", "/api/v1/lists", body)


@fuzz
@given(list_id=list_ids, body=payloads("list"))
def test_rename_list_never_fails_with_5xx(
    seeded: Any, row_counts: RowCounts, list_id: str, body: bytes
) -> None:
    send(seeded, row_counts, "PATCH", f"/api/v1/lists/{path_part(list_id)}", body)


@fuzz
@given(list_id=list_ids, body=payloads("members"))
def test_add_list_members_never_fails_with_5xx(
    seeded: Any, row_counts: RowCounts, list_id: str, body: bytes
) -> None:
    send(seeded, row_counts, "POST", f"/api/v1/lists/{path_part(list_id)}/contacts", body)


@fuzz
@given(body=payloads("event"))
def test_track_event_never_fails_with_5xx(seeded: Any, row_counts: RowCounts, body: bytes) -> None:
    send(seeded, row_counts, "POST", "/api/v1/events", body)


@fuzz
@given(body=payloads("attribute"))
def test_define_attribute_never_fails_with_5xx(
    seeded: Any, row_counts: RowCounts, body: bytes
) -> None:
    send(seeded, row_counts, "POST", "/api/v1/attributes", body)


@fuzz
@given(ref=refs, list_id=list_ids, method=st.sampled_from(["GET", "DELETE"]))
def test_contact_refs_never_fail_with_5xx(
    seeded: Any, row_counts: RowCounts, ref: str, list_id: str, method: str
) -> None:
    send(seeded, row_counts, method, f"/api/v1/contacts/{path_part(ref)}", None)
    path = f"/api/v1/lists/{path_part(list_id)}/contacts/{path_part(ref)}"
    send(seeded, row_counts, "DELETE", path, None)


# Cut short: the client refuses URLs of tens of kilobytes before they are sent.
query_values = mostly(
    st.sampled_from(["1", "ada@example.com", "paid", "contact.created", "2"]), texts
).map(lambda value: value[:300])


@fuzz
@given(
    path=st.sampled_from(
        ["/api/v1/contacts", "/api/v1/lists", "/api/v1/events", "/api/v1/messages"]
    ),
    params=st.dictionaries(
        st.sampled_from(
            ["email", "ext_id", "list_id", "limit", "cursor", "contact", "event_name", "event_type"]
        ),
        query_values,
        max_size=4,
    ),
)
def test_listing_parameters_never_fail_with_5xx(
    seeded: Any, row_counts: RowCounts, path: str, params: dict[str, str]
) -> None:
    query = "&".join(f"{key}={path_part(value)}" for key, value in params.items())
    send(seeded, row_counts, "GET", f"{path}?{query}", None)
