"""Pieces shared by the outbound delivery benchmarks: signing, bodies, percentiles, processes.

Used by bench_delivery.py (the orchestrator) and by the processes it starts (the receiver, the
bare sender and the load generator). Talks to 127.0.0.1 only; the processes are started with
``common.Proc``, each in its own session and ended with its whole process group.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import math
import os
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

USER_AGENT = "bench-sender/1"


# -- Standard Webhooks signing, the bare way ------------------------------------------------------


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret."""
    encoded = secret.removeprefix("whsec_")
    return base64.b64decode(encoded + "=" * (-len(encoded) % 4))


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = b"".join([msg_id.encode(), b".", str(timestamp).encode(), b".", body])
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(key: bytes, msg_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, msg_id, timestamp, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def verify(key: bytes, headers: Mapping[str, str], body: bytes) -> bool:
    """Whether one ``v1`` signature in the headers matches ``key`` (no timestamp tolerance)."""
    msg_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    offered = headers.get("webhook-signature")
    if not msg_id or not stamp or not offered or not stamp.isdigit():
        return False
    expected = signature(key, msg_id, int(stamp), body)
    return any(hmac.compare_digest(expected, part) for part in offered.split())


# -- bodies ---------------------------------------------------------------------------------------


def contact_data(index: int, size: int) -> dict[str, Any]:
    """``data`` of a contact.created message whose whole body is about ``size`` bytes."""
    stamp = datetime.fromtimestamp(1_700_000_000 + index, UTC).isoformat().replace("+00:00", "Z")
    data: dict[str, Any] = {
        "contact_id": index + 1,
        "email": f"user{index:07d}@example.com",
        "ext_id": None,
        "attributes": {"FIRSTNAME": "Ada", "LASTNAME": "Lovelace", "NOTES": ""},
        "list_ids": [],
        "created_at": stamp,
    }
    # The envelope (type, timestamp, keys) and the fields above take about 260 bytes.
    data["attributes"]["NOTES"] = "x" * max(0, size - 260)
    return data


# -- statistics -----------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Count, p50, p90, p99, max and mean (the unit of ``values``)."""
    ordered = sorted(values)
    return {
        "n": float(len(ordered)),
        "p50": percentile(ordered, 50),
        "p90": percentile(ordered, 90),
        "p99": percentile(ordered, 99),
        "max": ordered[-1] if ordered else math.nan,
        "mean": sum(ordered) / len(ordered) if ordered else math.nan,
    }


def fmt_ms(stats: Mapping[str, float]) -> str:
    """Latency percentiles given in seconds, printed in milliseconds."""
    return (
        "  ".join(
            f"{key} {stats[key] * 1000:7.1f}"
            for key in ("p50", "p90", "p99", "max")
            if key in stats
        )
        + f"  (n={int(stats.get('n', 0))})"
    )


# -- CPU accounting -------------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


def core_busy_seconds() -> dict[int, float]:
    """Busy (non-idle, non-iowait) CPU seconds of each core since boot, from /proc/stat."""
    busy: dict[int, float] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/stat").read_text().splitlines():
            name, *fields = line.split()
            if name.startswith("cpu") and name[3:].isdigit():
                values = [int(v) for v in fields[:8]]
                # user nice system idle iowait irq softirq steal
                busy[int(name[3:])] = (sum(values) - values[3] - values[4]) / _TICKS
    return busy


class CoreWatch:
    """How busy one core was between ``start()`` and ``stop()``, and how much of that was ours."""

    def __init__(self, core: int) -> None:
        self.core = core
        self.begun = 0.0
        self.busy_before = 0.0
        self.busy = 0.0
        self.wall = 0.0

    def start(self) -> CoreWatch:
        self.begun = time.monotonic()
        self.busy_before = core_busy_seconds().get(self.core, 0.0)
        return self

    def stop(self) -> CoreWatch:
        self.wall = time.monotonic() - self.begun
        self.busy = core_busy_seconds().get(self.core, 0.0) - self.busy_before
        return self

    def others(self, ours: float) -> float:
        """Share of the core used by processes other than ours (``ours`` in CPU seconds)."""
        return max(0.0, self.busy - ours) / self.wall if self.wall > 0 else 0.0


# -- processes ------------------------------------------------------------------------------------


def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
