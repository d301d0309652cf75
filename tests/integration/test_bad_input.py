"""Bad input on each backend: malformed JSON, oversize bodies, wrong shapes and unknown
references get a 4xx JSON error that says what is wrong, and nothing is half-written."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.conftest import RowCounts

MIB = 1024 * 1024
WRITES = [
    ("post", "/api/v1/contacts"),
    ("patch", "/api/v1/contacts/ada@example.com"),
    ("post", "/api/v1/lists"),
    ("patch", "/api/v1/lists/1"),
    ("post", "/api/v1/lists/1/contacts"),
    ("post", "/api/v1/events"),
    ("post", "/api/v1/attributes"),
]
JSON_HEADERS = {"content-type": "application/json"}


@pytest.fixture
def seeded(client: Any) -> Any:
    """A contact ada@example.com and list 1, so that every write endpoint has a target."""
    assert client.post("/api/v1/lists", json={"name": "VIP"}).status_code == 201
    assert client.post("/api/v1/contacts", json={"email": "ada@example.com"}).status_code == 201
    return client


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert error["message"]
    return error


@pytest.mark.parametrize(
    "body", [b"{", b'{"email": "a@example.com",}', b"{'a': 1}", b"\xff\xfe", b"[" * 5000]
)
def test_malformed_json_is_400_invalid_json(
    seeded: Any, row_counts: RowCounts, body: bytes
) -> None:
    before = row_counts()
    for method, path in WRITES:
        response = seeded.request(method, path, content=body, headers=JSON_HEADERS)
        assert_error(response, 400, "invalid_json")
    assert row_counts() == before


def test_oversize_body_with_content_length_is_413(seeded: Any, row_counts: RowCounts) -> None:
    before = row_counts()
    body = b'{"email": "' + b"a" * MIB + b'@example.com"}'
    for method, path in WRITES:
        response = seeded.request(method, path, content=body, headers=JSON_HEADERS)
        error = assert_error(response, 413, "payload_too_large")
        assert error["details"] == {"limit": MIB}
    assert row_counts() == before


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"name": "'
    for _ in range(total // size):
        yield b"x" * size
    yield b'"}'


def test_oversize_chunked_body_is_413(seeded: Any, row_counts: RowCounts) -> None:
    before = row_counts()
    for method, path in WRITES:
        response = seeded.request(method, path, content=chunks(2 * MIB), headers=JSON_HEADERS)
        assert "content-length" not in response.request.headers
        assert_error(response, 413, "payload_too_large")
    assert row_counts() == before


def test_body_just_under_the_limit_is_read(seeded: Any) -> None:
    padding = MIB - len(b'{"name": ""}') - 100
    response = seeded.post(
        "/api/v1/lists", content=chunks(padding, size=padding), headers=JSON_HEADERS
    )
    assert_error(response, 422, "validation_error")  # too long a name, but read and judged


def test_missing_body_is_400(seeded: Any, row_counts: RowCounts) -> None:
    before = row_counts()
    for method, path in WRITES:
        assert_error(seeded.request(method, path, headers=JSON_HEADERS), 400, "bad_request")
    assert row_counts() == before


@pytest.mark.parametrize(
    "body", [b"null", b"[]", b'"text"', b"42", b'[{"email": "a@example.com"}]']
)
def test_body_that_is_not_an_object_is_422(seeded: Any, row_counts: RowCounts, body: bytes) -> None:
    before = row_counts()
    for method, path in WRITES:
        response = seeded.request(method, path, content=body, headers=JSON_HEADERS)
        error = assert_error(response, 422, "validation_error")
        assert error["message"].startswith("body:")
    assert row_counts() == before


def test_unknown_field_is_422_naming_it(seeded: Any, row_counts: RowCounts) -> None:
    before = row_counts()
    for method, path in WRITES:
        response = seeded.request(method, path, json={"emial": "typo@example.com"})
        error = assert_error(response, 422, "validation_error")
        assert "emial" in str(error["details"])
    assert row_counts() == before


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"email": "a\u0000b@example.com"}, "email"),
        ({"email": "b@example.com", "ext_id": "cus\u0000"}, "ext_id"),
        ({"email": 5}, "email"),
        ({"email": "b@example.com", "list_ids": [0]}, "list_ids"),
        ({"email": "b@example.com", "list_ids": "1"}, "list_ids"),
        ({"email": "b@example.com", "attributes": []}, "attributes"),
        ({"email": "b@example.com", "unsubscribed": "maybe"}, "unsubscribed"),
    ],
)
def test_wrong_field_shape_is_422_naming_the_field(
    seeded: Any, row_counts: RowCounts, body: dict[str, Any], where: str
) -> None:
    before = row_counts()
    error = assert_error(seeded.post("/api/v1/contacts", json=body), 422, "validation_error")
    assert where in error["message"]
    assert row_counts() == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/contacts", b'{"email": "b@example.com", "ext_id": "\\ud800"}'),
        ("/api/v1/contacts", b'{"email": "b\\udfff@example.com"}'),
        ("/api/v1/contacts", b'{"email": "b@example.com", "attributes": {"A": "\\ud83d"}}'),
        ("/api/v1/lists", b'{"name": "VIP \\ud800"}'),
        ("/api/v1/events", b'{"event_name": "x", "identifiers": {"ext_id": "\\udc00"}}'),
        ("/api/v1/lists/1/contacts", b'{"emails": ["\\ud800@example.com"]}'),
    ],
)
def test_lone_surrogates_are_422_not_500(
    seeded: Any, row_counts: RowCounts, path: str, body: bytes
) -> None:
    before = row_counts()
    response = seeded.post(path, content=body, headers=JSON_HEADERS)
    assert_error(response, 422, "validation_error")
    assert row_counts() == before


def test_nul_in_a_list_name_is_422(seeded: Any) -> None:
    assert_error(seeded.post("/api/v1/lists", json={"name": "a\u0000b"}), 422, "validation_error")


@pytest.mark.parametrize(
    ("method", "path", "body", "details"),
    [
        (
            "post",
            "/api/v1/contacts",
            {"email": "b@example.com", "list_ids": [7]},
            {"list_ids": [7]},
        ),
        ("patch", "/api/v1/contacts/ada@example.com", {"list_ids": [7]}, {"list_ids": [7]}),
        ("post", "/api/v1/lists/7/contacts", {"emails": ["ada@example.com"]}, {"list_ids": [7]}),
        ("patch", "/api/v1/contacts/ghost@example.com", {}, {"ref": "ghost@example.com"}),
        (
            "post",
            "/api/v1/events",
            {"event_name": "x", "identifiers": {"contact_id": 7}},
            {"contact_id": 7},
        ),
    ],
)
def test_unknown_list_or_contact_is_404_saying_which(
    seeded: Any,
    row_counts: RowCounts,
    method: str,
    path: str,
    body: dict[str, Any],
    details: dict[str, Any],
) -> None:
    before = row_counts()
    error = assert_error(seeded.request(method, path, json=body), 404, "not_found")
    assert error["details"] == details
    assert row_counts() == before


@pytest.mark.parametrize("path", ["/api/v1/lists/0", "/api/v1/lists/abc", f"/api/v1/lists/{2**63}"])
def test_impossible_list_id_is_422(seeded: Any, path: str) -> None:
    assert_error(seeded.get(path), 422, "validation_error")


def test_unsupported_method_is_405_json(seeded: Any) -> None:
    assert_error(seeded.put("/api/v1/contacts/ada@example.com", json={}), 405, "method_not_allowed")


def test_unknown_path_is_404_json(seeded: Any) -> None:
    assert_error(seeded.get("/api/v1/nothing-here"), 404, "not_found")


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/contacts/a%00@example.com",
        "/api/v1/contacts?email=a%00@example.com",
        "/api/v1/contacts?ext_id=cus%00",
        "/api/v1/events?contact=a%00@example.com",
        "/api/v1/events?event_name=paid%00",
        "/api/v1/messages?event_type=contact.created%00",
        "/api/v1/messages/msg_%00",
        "/api/v1/messages?cursor=czoA",  # a well-formed cursor naming "\x00"
    ],
)
def test_nul_in_the_url_is_4xx_not_500(seeded: Any, url: str) -> None:
    response = seeded.get(url)
    assert 400 <= response.status_code < 500, response.text
    assert set(response.json()["error"]) == {"code", "message", "details"}
    assert seeded.delete(url.replace("/contacts/", "/lists/1/contacts/")).status_code < 500
