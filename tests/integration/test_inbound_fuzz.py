"""Whatever a sender puts in headers and body, ``POST /in/{token}`` answers without a 5xx, and
whatever a genuine sender's payload holds, processing it never stalls the backlog.

Requests go straight to the ASGI app with raw header bytes (any byte a socket could carry), so
nothing in a client library tidies them first. Signed payloads are the fixtures with some values
swapped for arbitrary JSON: shaped enough to reach the preset rules, odd enough to break them.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookhub.services import Services
from tests.support.inbound import Hook, create_hook, fixture, log_statuses

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SIGNED_SOURCES = ("stripe", "shopify", "calendly", "typeform", "github", "standard")
HEADER_NAMES = (
    "stripe-signature",
    "calendly-webhook-signature",
    "x-shopify-hmac-sha256",
    "x-shopify-topic",
    "x-shopify-event-id",
    "typeform-signature",
    "x-hub-signature-256",
    "x-github-event",
    "x-github-delivery",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "authorization",
    "x-signature",
    "content-type",
    "x-delivery",
    "x-event",
)
VALUE_SHAPES = (
    b"t=",
    b"t=1700000000,v1=",
    b"v1=",
    b"sha256=",
    b"v1,",
    b"Bearer ",
    b"Basic ",
    b"application/x-www-form-urlencoded",
    b"application/json",
)
SIGNUP = {
    "email": "sam@example.com",
    "first_name": "Sam",
    "id": "user_1",
    "at": "2024-01-02T03:04:05Z",
    "profile": {"plan": "pro", "seats": 3},
    "tags": ["a", "b"],
}
GENERIC_RULES = [
    {
        "name": "everything",
        "contact": {
            "email": "email",
            "ext_id": "id",
            "attributes": {"FIRSTNAME": "first_name", "SEATS": "profile.seats"},
            "attributes_from": ["profile", "@"],
        },
        "event": {"name": "signed_up", "properties": {"tags": "tags", "all": "@"}, "date": "at"},
    }
]
PAYLOADS = {
    "stripe": json.loads(fixture("stripe_customer_created")),
    "shopify": json.loads(fixture("shopify_orders_create")),
    "calendly": json.loads(fixture("calendly_invitee_created")),
    "typeform": json.loads(fixture("typeform_form_response")),
    "github": json.loads(fixture("github_push")),
    "standard": {"type": "contact.created", "data": {"email": "a@example.com", "attributes": {}}},
    "generic": SIGNUP,
}
# Where each source keeps what the receiver and the presets read first: mangled most often.
KEY_PATHS: dict[str, list[tuple[Any, ...]]] = {
    "stripe": [
        ("id",),
        ("type",),
        ("created",),
        ("data", "object", "email"),
        ("data", "object", "name"),
    ],
    "shopify": [("email",), ("created_at",), ("customer",), ("total_price",), ("line_items",)],
    "calendly": [
        ("event",),
        ("created_at",),
        ("payload", "uri"),
        ("payload", "name"),
        ("payload", "first_name"),
    ],
    "typeform": [
        ("event_id",),
        ("event_type",),
        ("form_response", "answers"),
        ("form_response", "hidden"),
    ],
    "github": [("pusher", "email"), ("commits",), ("head_commit", "timestamp"), ("sender",)],
    "standard": [("type",), ("data", "email"), ("data", "attributes")],
    "generic": [("email",), ("id",), ("at",), ("profile",), ("tags",)],
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(
        ["", "\x00", "evt_\x00", "a@example.com", "0001-01-01T00:00:00+01:00", "9" * 30, "x" * 300]
    ),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)
header_values = st.binary(max_size=120) | st.builds(
    bytes.__add__, st.sampled_from(VALUE_SHAPES), st.binary(max_size=80)
)
raw_headers = st.lists(
    st.tuples(
        st.sampled_from(HEADER_NAMES).map(str.encode)
        | st.binary(min_size=1, max_size=20).map(bytes.lower),
        header_values,
    ),
    max_size=6,
)
bodies = st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode())


def _leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaf_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaf_paths(item, (*path, index))
    yield path


def _replace(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return document


@st.composite
def mangled(draw: st.DrawFn, source: str) -> bytes:
    """The source's payload with a few values (or whole subtrees) replaced by arbitrary JSON."""
    document = copy.deepcopy(PAYLOADS[source])
    paths = sorted(set(_leaf_paths(document)), key=len)
    where = st.sampled_from(KEY_PATHS[source]) | st.sampled_from(paths)
    for path in draw(st.lists(where, max_size=4)):
        value = draw(json_values)
        # An earlier replacement may have removed the place.
        with contextlib.suppress(KeyError, IndexError, TypeError):
            document = _replace(document, path, value)
    return json.dumps(document).encode()


def _post(app: Any, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": headers,
        "query_string": b"",
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status: int = sent[0]["status"]
    return status


@pytest.fixture
def hooks(client: Any) -> dict[str, Hook]:
    made = {source: create_hook(client, source) for source in SIGNED_SOURCES}
    options = {"dedupe_header": "x-delivery", "event_type_header": "x-event"}
    made["generic"] = create_hook(client, "generic", rules=GENERIC_RULES, options=options)
    made["generic-hmac"] = create_hook(client, "generic", secret="s3cret", rules=GENERIC_RULES)
    return made


def _process_everything(services: Services) -> None:
    while services.inbound.process_backlog():
        pass
    assert "received" not in log_statuses(services), "a request is stuck in the backlog"


@FUZZ
@given(data=st.data(), headers=raw_headers, body=bodies)
def test_arbitrary_requests_get_no_5xx(
    client: Any, services: Services, hooks: dict[str, Hook], data: Any, headers: Any, body: bytes
) -> None:
    hook = hooks[data.draw(st.sampled_from(sorted(hooks)), label="hook")]
    status = _post(client.app, hook.path, headers, body)
    assert status < 500
    _process_everything(services)


@FUZZ
@given(data=st.data())
def test_genuine_senders_odd_payloads_get_no_5xx_and_never_stall_processing(
    client: Any, services: Services, hooks: dict[str, Hook], data: Any
) -> None:
    name = data.draw(st.sampled_from(sorted(hooks)), label="hook")
    hook = hooks[name]
    body = data.draw(mangled(hook.source), label="body")
    signed = hook.sign(body, now=time.time())
    headers = [(k.lower().encode(), v.encode()) for k, v in signed.items()]
    status = _post(client.app, hook.path, headers, body)
    assert status in (200, 202, 400, 429), status
    _process_everything(services)


@FUZZ
@given(data=st.data(), body=json_values | st.text(max_size=100))
def test_preview_of_anything_is_an_answer(
    client: Any, hooks: dict[str, Hook], data: Any, body: Any
) -> None:
    hook = hooks[data.draw(st.sampled_from(sorted(hooks)), label="hook")]
    if data.draw(st.booleans(), label="shaped"):
        body = json.loads(data.draw(mangled(hook.source), label="mangled"))
    try:
        content = json.dumps({"body": body}).encode()
    except ValueError:
        return
    response = client.post(
        f"/api/v1/inbound-webhooks/{hook.id}/preview",
        content=content,
        headers={"content-type": "application/json"},
    )
    assert response.status_code in (200, 422), response.text


# Each: the webhook, the payload and extra headers; a second copy is always a duplicate.
ODD_BUT_GENUINE = {
    "NUL in the event id": ("stripe", {"id": "evt_\x00", "type": "customer.created"}, {}),
    "NUL in the event type": ("stripe", {"id": "evt_1", "type": "customer.\x00created"}, {}),
    "300-character event type": ("stripe", {"id": "evt_2", "type": "x" * 300}, {}),
    "300-character event id": ("typeform", {"event_id": "e" * 300, "event_type": "x"}, {}),
    "NUL in a dedupe header": ("generic", {"email": "n@example.com"}, {"x-delivery": "d\x00"}),
    # Another body: the same body again is a duplicate whatever its (unsigned) delivery id.
    "NUL in a type header": ("generic", {"email": "t@example.com"}, {"x-event": "t\x00"}),
}


def test_odd_ids_and_types_from_genuine_senders_are_stored_and_deduped(
    client: Any, services: Services, hooks: dict[str, Hook]
) -> None:
    """PostgreSQL refuses NUL in text and overlong strings in String(255) columns, and one
    refused entry would fail the whole group commit, with a 500 for every request in it."""
    for case, (name, payload, extra) in ODD_BUT_GENUINE.items():
        hook = hooks[name]
        body = json.dumps(payload).encode()
        signed = {**hook.sign(body), **extra}
        headers = [(k.lower().encode(), v.encode("latin-1")) for k, v in signed.items()]
        assert _post(client.app, hook.path, headers, body) == 202, case
        assert _post(client.app, hook.path, headers, body) == 200, case
    _process_everything(services)
