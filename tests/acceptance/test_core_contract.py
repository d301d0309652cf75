"""The contacts core's public contract, driven over real HTTP against ``hookhub serve`` started
as a separate process, once on SQLite and once on PostgreSQL (when HOOKHUB_TEST_POSTGRES_URL is
set): contacts, upsert, PATCH, lists, custom events, pagination, the outbox messages each change
produced, the error statuses, and the API key printed on a first start."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.conftest import API_KEY, SECRET_KEY

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
MIB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return self.stdout.read_text(errors="replace")


@contextlib.contextmanager
def hookhub_serve(db_url: str, workdir: Path, *, api_key: str | None) -> Iterator[Server]:
    """Runs ``python -m hookhub serve`` until the block ends, then stops it (and kills it if
    it does not stop)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKHUB_")}
    env.update(
        {
            "HOOKHUB_DATABASE_URL": db_url,
            "HOOKHUB_LOG_FORMAT": "text",
            "HOOKHUB_RETRY_SCHEDULE": "1,1,1",
            "HOOKHUB_SECRET_KEY": SECRET_KEY,
        }
    )
    if api_key is not None:
        env["HOOKHUB_API_KEY"] = api_key
    runs = len(list(workdir.glob("serve-*.out")))
    server = Server(
        url=f"http://127.0.0.1:{port}",
        stdout=workdir / f"serve-{runs}.out",
        stderr=workdir / f"serve-{runs}.err",
    )
    with server.stdout.open("wb") as out, server.stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "hookhub", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=err,
        )
        try:
            _wait_until_healthy(server, process)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)


def _wait_until_healthy(server: Server, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"hookhub serve exited with {process.returncode}:\n{_logs(server)}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    pytest.fail(f"hookhub serve did not answer /healthz in {START_TIMEOUT} s:\n{_logs(server)}")


def _logs(server: Server) -> str:
    return server.output() + server.stderr.read_text(errors="replace")


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    with hookhub_serve(db_url, tmp_path, api_key=API_KEY) as running:
        yield running


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{server.url}/api/v1",
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    ) as client:
        yield client


def payloads(api: httpx.Client) -> list[dict[str, Any]]:
    response = api.get("/messages", params={"limit": 1000})
    assert response.status_code == 200
    return [m["payload"] for m in response.json()["data"]]


def new_payloads(api: httpx.Client, seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages written since ``seen`` was read (as the listing order puts them)."""
    everything = payloads(api)
    fresh = [p for p in everything if p not in seen]
    seen[:] = everything
    return fresh


def kinds(messages: list[dict[str, Any]]) -> Counter[str]:
    return Counter(m["type"] for m in messages)


def test_contacts_core_contract_over_http(server: Server, api: httpx.Client) -> None:
    seen: list[dict[str, Any]] = []
    assert httpx.get(f"{server.url}/readyz").json()["status"] == "ready"

    # Keys.
    assert httpx.get(f"{server.url}/api/v1/contacts").status_code == 401
    wrong = httpx.get(f"{server.url}/api/v1/contacts", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "unauthorized"

    # Create, conflict, upsert.
    created = api.post(
        "/contacts", json={"email": " Ada@Example.com ", "attributes": {"plan": "free", "age": 36}}
    )
    assert created.status_code == 201
    ada = created.json()
    assert ada["email"] == "ada@example.com"
    [message] = new_payloads(api, seen)
    assert message["type"] == "contact.created"
    assert message["data"]["contact_id"] == ada["id"]
    assert message["data"]["email"] == "ada@example.com"

    assert api.post("/contacts", json={"email": "ada@example.com"}).status_code == 409
    upserted = api.post(
        "/contacts", params={"upsert": "true"}, json={"email": "ada@example.com", "ext_id": "c1"}
    )
    assert upserted.status_code == 200
    assert upserted.json()["ext_id"] == "c1"
    [message] = new_payloads(api, seen)
    assert message["data"]["changes"] == {"ext_id": {"old": None, "new": "c1"}}
    assert (
        api.post("/contacts", json={"email": "other@example.com", "ext_id": "c1"}).status_code
        == 409
    )

    # Lists and membership.
    vip = api.post("/lists", json={"name": "VIP"}).json()
    assert api.post("/lists", json={"name": "VIP"}).status_code == 409
    grace = api.post("/contacts", json={"email": "grace@example.com"}).json()
    new_payloads(api, seen)
    all_or_nothing = api.post(
        f"/lists/{vip['id']}/contacts", json={"emails": ["grace@example.com", "ghost@example.com"]}
    )
    assert all_or_nothing.status_code == 404
    assert api.get(f"/lists/{vip['id']}").json()["contact_count"] == 0
    added = api.post(
        f"/lists/{vip['id']}/contacts",
        json={"emails": ["grace@example.com"], "contact_ids": [ada["id"]]},
    )
    assert added.status_code == 201
    assert api.get(f"/lists/{vip['id']}").json()["contact_count"] == 2
    assert kinds(new_payloads(api, seen)) == {"list.contact_added": 2}
    assert api.delete(f"/lists/{vip['id']}/contacts/grace@example.com").status_code == 204
    [removed] = new_payloads(api, seen)
    assert (removed["type"], removed["data"]["contact_id"]) == ("list.contact_removed", grace["id"])

    # PATCH by email: merge, remove, unlink, unsubscribe.
    patched = api.patch(
        "/contacts/ADA@example.com",
        json={
            "attributes": {"plan": "pro", "age": None},
            "unlink_list_ids": [vip["id"]],
            "unsubscribed": True,
        },
    )
    assert patched.status_code == 200
    assert patched.json()["attributes"] == {"PLAN": "pro"}
    assert patched.json()["list_ids"] == []
    fresh = new_payloads(api, seen)
    assert kinds(fresh) == {
        "contact.updated": 1,
        "contact.unsubscribed": 1,
        "list.contact_removed": 1,
    }
    [updated] = [m for m in fresh if m["type"] == "contact.updated"]
    assert updated["data"]["changes"] == {
        "PLAN": {"old": "free", "new": "pro"},
        "AGE": {"old": 36, "new": None},
        "unsubscribed": {"old": False, "new": True},
    }
    same = api.patch(f"/contacts/{ada['id']}", json={"attributes": {"plan": "pro"}})
    assert same.status_code == 200
    assert new_payloads(api, seen) == []
    fetched = api.get("/contacts/ada@example.com").json()
    assert fetched == api.get(f"/contacts/{ada['id']}").json()
    assert fetched["unsubscribed"] is True

    # Custom events.
    event = api.post(
        "/events",
        json={
            "event_name": "order_completed",
            "identifiers": {"email": "alan@example.com"},
            "contact_properties": {"firstname": "Alan"},
            "event_properties": {"total": 42.5},
            "event_date": "2026-01-15T10:30:00+01:00",
        },
    )
    assert event.status_code == 201
    assert event.json()["event_date"] == "2026-01-15T09:30:00.000Z"
    assert kinds(new_payloads(api, seen)) == {"contact.created": 1, "event.tracked": 1}
    api.post("/events", json={"event_name": "login", "identifiers": {"ext_id": "c1"}})
    listed = api.get("/events", params={"contact": "alan@example.com"}).json()["data"]
    assert [e["event_name"] for e in listed] == ["order_completed"]
    by_name = api.get("/events", params={"event_name": "login"}).json()["data"]
    assert [e["contact_id"] for e in by_name] == [ada["id"]]
    too_big = api.post(
        "/events",
        json={
            "event_name": "x",
            "identifiers": {"email": "ada@example.com"},
            "event_properties": {"blob": "x" * 60_000},
        },
    )
    assert too_big.status_code == 422

    # Pagination.
    for i in range(5):
        api.post("/contacts", json={"email": f"page{i}@example.com"})
    emails: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/contacts", params=params).json()
        emails += [c["email"] for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert emails == [
        "ada@example.com",
        "grace@example.com",
        "alan@example.com",
        *(f"page{i}@example.com" for i in range(5)),
    ]
    members = api.get("/contacts", params={"list_id": vip["id"]}).json()["data"]
    assert [c["email"] for c in members] == []

    # Bad input changes nothing.
    new_payloads(api, seen)
    wrong_type = api.post("/contacts", json={"email": "n@example.com", "attributes": {"PLAN": 1}})
    assert wrong_type.status_code == 422
    assert "PLAN" in wrong_type.json()["error"]["message"]
    malformed = api.post(
        "/contacts", content=b'{"email": ', headers={"content-type": "application/json"}
    )
    assert (malformed.status_code, malformed.json()["error"]["code"]) == (400, "invalid_json")
    assert api.get("/contacts/nobody@example.com").status_code == 404
    assert (
        api.post("/contacts", json={"email": "n@example.com", "list_ids": [999]}).status_code == 404
    )
    assert new_payloads(api, seen) == []

    # Delete.
    assert api.delete("/contacts/grace@example.com").status_code == 204
    assert api.get("/contacts/grace@example.com").status_code == 404
    [deleted] = new_payloads(api, seen)
    assert (deleted["type"], deleted["data"]["email"]) == ("contact.deleted", "grace@example.com")

    # Every message names its contact; one message reads back alone.
    everything = api.get("/messages", params={"limit": 1000}).json()["data"]
    for message in everything:
        assert set(message["payload"]) == {"type", "timestamp", "data", "origin"}
        assert message["payload"]["origin"]["type"] == "api"  # every one made through the API
        assert isinstance(message["payload"]["data"]["contact_id"], int)
        assert "@" in message["payload"]["data"]["email"]
    one = api.get(f"/messages/{everything[0]['id']}").json()
    assert one["payload"] == everything[0]["payload"]
    filtered = api.get("/messages", params={"event_type": "contact.created"}).json()["data"]
    assert len(filtered) == 8

    assert httpx.get(f"{server.url}/metrics").status_code == 401  # a key (any scope) reads it
    metrics = api.get(f"{server.url}/metrics").text
    assert 'route="/api/v1/contacts/{ref}"' in metrics
    assert 'hookhub_messages_created_total{type="contact.created"} 8.0' in metrics


def test_oversize_bodies_are_413_over_http(server: Server, api: httpx.Client) -> None:
    body = b'{"email": "' + b"a" * (2 * MIB) + b'@example.com"}'
    declared = api.post("/contacts", content=body, headers={"content-type": "application/json"})
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:
        yield b'{"email": "'
        for _ in range(32):
            yield b"a" * (64 * 1024)
        yield b'@example.com"}'

    chunked = api.post("/contacts", content=chunks(), headers={"content-type": "application/json"})
    assert chunked.status_code == 413
    assert api.get("/contacts").json()["data"] == []
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_first_start_without_a_key_prints_one_key_that_works(db_url: str, tmp_path: Path) -> None:
    with hookhub_serve(db_url, tmp_path, api_key=None) as first:
        printed = re.findall(r"API key \(shown once, store it now\): (\S+)", first.output())
        assert len(printed) == 1
        key = printed[0]
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.get(f"{first.url}/api/v1/contacts", headers=headers).status_code == 200
    assert key not in first.stderr.read_text(errors="replace")

    with hookhub_serve(db_url, tmp_path, api_key=None) as second:
        assert "API key" not in second.output()
        assert httpx.get(f"{second.url}/api/v1/contacts", headers=headers).status_code == 200
        refused = httpx.get(f"{second.url}/api/v1/contacts")
        assert refused.status_code == 401
