"""Endpoint health as a worker learns it: failing streaks, and disabling dead endpoints.

Applied inside the transaction that records a batch of outcomes: an endpoint that answered
410 Gone, or has failed without a success for ``endpoint_disable_after`` seconds, is disabled
and a ``webhook.disabled`` event is emitted. That event goes to other subscribers, so it names
the endpoint's URL only as ``scheme://host[:port]/…``: the path or query of a Slack or Zapier
URL is a capability.

What this module must never do: write SQL of its own (``hookhub.store.endpoints`` owns it), or
write for a healthy endpoint whose streak did not just end (the common case costs nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection

from hookhub.core import jsoncodec
from hookhub.core.urlguard import redact_url
from hookhub.outbound.outbox import OutboxWriter
from hookhub.store.endpoints import EndpointStore

__all__ = ["EndpointEffect", "EndpointHealth"]

log = logging.getLogger("hookhub.worker")


@dataclass(slots=True)
class EndpointEffect:
    """What one flush learned about an endpoint."""

    succeeded: bool = False
    failed_at: float | None = None
    gone: bool = False


class EndpointHealth:
    """Tracks which endpoints this worker has recorded as failing, and disables dead ones."""

    def __init__(
        self, disable_after: float, believed_failing: Callable[[int], bool] = lambda _id: False
    ) -> None:
        self.disable_after = disable_after
        self.believed_failing = believed_failing
        """Whether the worker's view of an endpoint (its lane) says it is failing."""
        self._failing: set[int] = set()

    def apply(
        self,
        conn: Connection,
        effects: dict[int, EndpointEffect],
        writer: OutboxWriter,
        now: float,
        occurred: datetime,
    ) -> None:
        store = EndpointStore(conn)
        for endpoint_id, effect in effects.items():
            reason: str | None = None
            if effect.gone:
                reason = "the endpoint answered 410 Gone"
            elif effect.failed_at is None:
                # Healthy endpoints are the common case: write only when a streak ends.
                if self.believed_failing(endpoint_id) or endpoint_id in self._failing:
                    store.set_failing(endpoint_id, None)
                    self._failing.discard(endpoint_id)
                continue
            else:
                store.set_failing(endpoint_id, effect.failed_at)
                self._failing.add(endpoint_id)
                endpoint = store.get(endpoint_id)
                since = endpoint.failing_since if endpoint else None
                if since is not None and now - since >= self.disable_after:
                    reason = "failing since " + jsoncodec.isoformat(
                        datetime.fromtimestamp(since, UTC)
                    )
            if reason is not None and store.disable(endpoint_id, reason):
                endpoint = store.get(endpoint_id)
                log.warning("webhook.disabled", extra={"webhook_id": endpoint_id, "reason": reason})
                writer.emit(
                    "webhook.disabled",
                    {
                        "webhook_id": endpoint_id,
                        "url": redact_url(endpoint.url) if endpoint else None,
                        "reason": reason,
                    },
                    occurred,
                    about_endpoint=endpoint_id,
                )
