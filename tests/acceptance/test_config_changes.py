"""A change made in one process takes effect in another at once, not when a cache expires:
a revoked API key and a disabled inbound webhook are refused by a running ``hookhub serve``
whose caches held them, on each backend (a version row polled on SQLite, NOTIFY on PostgreSQL).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx2 as httpx
import pytest

from hookhub.keys import CACHE_SECONDS, Scope
from hookhub.services import build_services
from tests.conftest import API_KEY, make_settings
from tests.support import processes

# Well within the caches' lifetime: meeting it shows the caches were dropped, not expired.
BOUND = CACHE_SECONDS / 2


def until(deadline: float, check: Callable[[], bool]) -> bool:
    """Poll ``check`` until it holds or ``deadline`` (monotonic) passes."""
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


@pytest.mark.slow
def test_a_revoked_key_and_a_disabled_webhook_are_refused_elsewhere_at_once(
    db_url: str, tmp_path: Path
) -> None:
    with processes.serving(db_url, tmp_path, HOOKHUB_API_KEY=API_KEY) as base:
        here = build_services(make_settings(db_url))
        try:
            info, key = here.keys.create("elsewhere", scope=Scope.READ)
            hook, _secret = here.inbound.create(
                {"name": "form", "source": "generic", "options": {"auth": "none"}}
            )
            auth = {"Authorization": f"Bearer {key}"}
            receive_url = f"{base}/in/{hook.token}"
            with httpx.Client(timeout=5) as http:
                # The serving process checks both once, and caches them.
                assert http.get(f"{base}/api/v1/contacts", headers=auth).status_code == 200
                first = http.post(receive_url, json={"email": "a@example.com"})
                assert first.status_code in (200, 202), first.text

                here.keys.revoke(info.id)
                here.inbound.update(hook.id, {"enabled": False})
                deadline = time.monotonic() + BOUND
                assert until(
                    deadline,
                    lambda: http.get(f"{base}/api/v1/contacts", headers=auth).status_code == 401,
                )
                assert until(
                    deadline,
                    lambda: (
                        http.post(receive_url, json={"email": "b@example.com"}).status_code == 404
                    ),
                )
        finally:
            here.close()
