"""Property-based: arbitrary JSON thrown at the outbound webhooks API never gets a 5xx, and a
refused request leaves the webhooks, deliveries and messages as they were.

Bodies are the call's own fields filled with mostly plausible values (so requests reach the
domain rules) and sometimes anything at all: huge or non-finite numbers, NUL characters, lone
surrogates, CR/LF, wrong types, deep nesting, or bytes that are not JSON.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from hookhub.core.catalog import CATALOG
from hookhub.services import Services
from hookhub.store.schema import deliveries, endpoints, messages

API = "/api/v1"
fuzz = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- values -----------------------------------------------------------------------------------

tricky_text = st.sampled_from(
    ["", " ", "\x00", "\ud800", "a\r\nb", "\n", "é" * 300, "x" * 5000, "null", "9" * 40, "*"]
)
texts = st.one_of(tricky_text, st.text(st.characters(exclude_categories=()), max_size=30))
numbers = st.one_of(
    st.integers(),
    st.sampled_from([0, -1, 2**63, -(2**63), 10**30, 2**64]),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4)
    ),
    max_leaves=10,
)


def mostly(good: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.sampled_from([True, True, True, False]).flatmap(lambda plain: good if plain else odd)


urls = mostly(
    st.sampled_from(
        [
            "https://hooks.example.com/in",
            "http://127.0.0.1:9/hook",
            "http://localhost:9/",
            "http://10.0.0.1/",
            "http://[::1]:9/",
            "https://ex\u00e4mple.com/\u00e9",
            "https://example.com/" + "p" * 2100,
            "ftp://example.com/",
            "http://u:p@example.com/",
        ]
    ),
    st.one_of(texts, json_values),
)
event_names = st.sampled_from([*CATALOG, "*", "contact.*", "webhook.*", "nope", "contact."])
events = mostly(st.lists(event_names, max_size=5), json_values)
headers = mostly(
    st.dictionaries(
        st.sampled_from(["X-Team", "Host", "webhook-id", "X Bad", "X-\u00e9", "x-trace"]),
        st.one_of(st.sampled_from(["v", "", "a\r\nb", "\x00"]), texts),
        max_size=3,
    ),
    json_values,
)
auths = mostly(
    st.one_of(
        st.fixed_dictionaries({"type": st.just("bearer")}, optional={"token": texts}),
        st.fixed_dictionaries(
            {"type": st.just("basic")}, optional={"username": texts, "password": texts}
        ),
        st.none(),
    ),
    json_values,
)
secrets = mostly(
    st.sampled_from(
        ["whsec_" + "A" * 43 + "=", "whsec_short", "whsec_" + "A" * 200, "MfKQ9r8GKYqrTwjUPD8I"]
    ),
    st.one_of(texts, json_values),
)
dates = mostly(
    st.sampled_from(
        [
            "2026-01-15T09:30:00Z",
            "2020-01-01T00:00:00+14:00",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "2026-01-15",
            "1700000000",
        ]
    ),
    st.one_of(texts, json_values),
)
flags = mostly(st.booleans(), json_values)
webhook_fields: dict[str, st.SearchStrategy[Any]] = {
    "url": urls,
    "events": events,
    "description": mostly(st.sampled_from(["", "ok"]), st.one_of(texts, json_values)),
    "headers": headers,
    "auth": auths,
    "batched": flags,
    "enabled": flags,
    "rate_limit": mostly(st.sampled_from([0.5, 1, 100, None]), numbers),
    "max_concurrency": mostly(st.sampled_from([1, 4, None]), numbers),
    "secret": secrets,
}


def shaped(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[Any]:
    optional = {k: v for k, v in optional.items() if k not in required}
    plain = st.fixed_dictionaries(required, optional=optional)
    odd = st.one_of(
        st.fixed_dictionaries(required, optional={**optional, "unexpected": json_values}),
        st.fixed_dictionaries({}, optional={**required, **optional}),
        json_values,
    )
    return mostly(plain, odd)


def payloads(body: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    encoded = body.map(lambda value: json.dumps(value, allow_nan=True).encode())
    return st.one_of(encoded, encoded, st.binary(max_size=40))


ids = mostly(st.sampled_from(["1", "2", "3", "99"]), st.one_of(st.integers().map(str), texts))


def path_part(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="") or "x"


# -- the property -----------------------------------------------------------------------------


@pytest.fixture
def seeded(client: Any) -> Any:
    """Two webhooks and one test delivery, so that valid requests can succeed."""
    for url in ("https://a.example/in", "https://b.example/in"):
        response = client.post(f"{API}/webhooks", json={"url": url, "events": ["contact.*"]})
        assert response.status_code == 201
    sent = client.post(f"{API}/webhooks/1/test", json={"event_type": "contact.created"})
    assert sent.status_code == 202
    return client


def counts(services: Services) -> dict[str, int]:
    with services.db.read() as conn:
        return {
            table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in (endpoints, deliveries, messages)
        }


def send(client: Any, services: Services, method: str, path: str, body: bytes | None) -> None:
    before = counts(services)
    webhooks_before = client.get(f"{API}/webhooks", params={"limit": 1000}).json()
    response = client.request(
        method, API + path, content=body, headers={"content-type": "application/json"}
    )
    event(f"{method} {path.split('/')[1]} answered {response.status_code}")
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"code", "message", "details"}
        assert counts(services) == before, response.text
        assert client.get(f"{API}/webhooks", params={"limit": 1000}).json() == webhooks_before


@fuzz
@given(body=payloads(shaped({"url": urls, "events": events}, webhook_fields)))
def test_create_never_fails_with_5xx(seeded: Any, services: Services, body: bytes) -> None:
    send(seeded, services, "POST", "/webhooks", body)


@fuzz
@given(webhook=ids, body=payloads(shaped({}, webhook_fields)))
def test_patch_never_fails_with_5xx(
    seeded: Any, services: Services, webhook: str, body: bytes
) -> None:
    send(seeded, services, "PATCH", f"/webhooks/{path_part(webhook)}", body)


@fuzz
@given(webhook=ids, body=st.one_of(st.none(), payloads(shaped({}, {"secret": secrets}))))
def test_rotate_secret_never_fails_with_5xx(
    seeded: Any, services: Services, webhook: str, body: bytes | None
) -> None:
    send(seeded, services, "POST", f"/webhooks/{path_part(webhook)}/rotate-secret", body)


@fuzz
@given(
    webhook=ids,
    body=payloads(shaped({"event_type": mostly(event_names, st.one_of(texts, json_values))}, {})),
)
def test_test_send_never_fails_with_5xx(
    seeded: Any, services: Services, webhook: str, body: bytes
) -> None:
    send(seeded, services, "POST", f"/webhooks/{path_part(webhook)}/test", body)


@fuzz
@given(webhook=ids, body=payloads(shaped({"since": dates}, {"until": dates})))
def test_recover_never_fails_with_5xx(
    seeded: Any, services: Services, webhook: str, body: bytes
) -> None:
    send(seeded, services, "POST", f"/webhooks/{path_part(webhook)}/recover", body)


@fuzz
@given(delivery=ids, body=st.one_of(st.none(), payloads(json_values)))
def test_retry_never_fails_with_5xx(
    seeded: Any, services: Services, delivery: str, body: bytes | None
) -> None:
    send(seeded, services, "POST", f"/deliveries/{path_part(delivery)}/retry", body)
