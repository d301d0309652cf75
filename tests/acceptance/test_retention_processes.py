"""Retention as real processes: ``hookhub purge`` now, and ``hookhub serve`` on its interval."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from hookhub.services import Services
from tests.support import processes
from tests.support.retention import message_ids, seed_message


def _purge(db_url: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "hookhub", "purge", *args],
        env=processes.hookhub_env(db_url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _printed(output: str) -> dict[str, int]:
    pairs = (line.split(": ") for line in output.splitlines() if ": " in line)
    return {kind: int(count) for kind, count in pairs}


def _wait_until(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not true within {timeout} s"
        time.sleep(0.1)


def test_purge_deletes_what_is_old_and_prints_counts(services: Services, db_url: str) -> None:
    endpoint = services.endpoints.create({"url": "https://a.example.com/", "events": ["*"]})
    old = [
        seed_message(services, "contact.created", age_days=40, outcomes={endpoint.id: status})
        for status in ("succeeded", "exhausted", "pending")
    ]
    recent = seed_message(
        services, "contact.created", age_days=1, outcomes={endpoint.id: "succeeded"}
    )

    dry = _purge(db_url, "--dry-run")
    assert "nothing deleted" in dry
    assert _printed(dry) == {
        "requests": 0,
        "dedupe_keys": 0,
        "unlogged_counts": 0,
        "messages": 2,
        "deliveries": 2,
        "attempts": 2,
        "emails": 0,
        "email_events": 0,
        "idempotency_keys": 0,
        "enrollments": 0,
        "step_logs": 0,
    }
    assert message_ids(services) == {*old, recent}

    assert _printed(_purge(db_url, "--requests")) == {
        "requests": 0,
        "dedupe_keys": 0,
        "unlogged_counts": 0,
    }
    assert message_ids(services) == {*old, recent}
    assert _printed(_purge(db_url, "--messages")) == {"messages": 2, "deliveries": 2, "attempts": 2}
    assert message_ids(services) == {old[2], recent}  # the pending one stays
    assert _printed(_purge(db_url))["messages"] == 0
    assert _printed(_purge(db_url, "--emails")) == {
        "emails": 0,
        "email_events": 0,
        "idempotency_keys": 0,
    }
    assert _printed(_purge(db_url, "--automations")) == {"enrollments": 0, "step_logs": 0}


def test_serve_purges_on_its_interval(services: Services, db_url: str, tmp_path: Path) -> None:
    seed_message(services, "webhook.disabled", age_days=40)
    kept = seed_message(services, "webhook.disabled", age_days=1)
    with processes.serving(db_url, tmp_path, HOOKHUB_RETENTION_INTERVAL="0.2"):
        _wait_until(lambda: message_ids(services) == {kept})
        seed_message(services, "webhook.disabled", age_days=31)  # while it runs
        _wait_until(lambda: message_ids(services) == {kept})
