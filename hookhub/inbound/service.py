"""Inbound webhooks: their configuration, and running their rules on logged requests.

Rules run *after* a request is acknowledged, from the durable request log, in arrival order per
webhook (:meth:`InboundService.process_backlog`). Each request's actions and the outbox messages
they cause commit together (a savepoint per request inside a batch transaction); a request whose
rules fail is marked ``failed`` with the reason and an ``inbound.failed`` event, and nothing it
started is kept. Preview runs the same code in a transaction that is always rolled back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Row
from sqlalchemy.exc import DataError

from hookhub import ids
from hookhub.config import Settings
from hookhub.core import jsoncodec
from hookhub.crm.operations import CrmTx
from hookhub.errors import Conflict, HookhubError, NotFound, ValidationFailed
from hookhub.inbound.actions import apply_plans
from hookhub.inbound.presets import preset_rules
from hookhub.inbound.providers import get_provider
from hookhub.inbound.providers.base import RawRequest
from hookhub.inbound.rules import Rule, RuleError, compile_rules, resolve
from hookhub.outbound.outbox import Outbox
from hookhub.store.database import Database
from hookhub.store.inbound import InboundRequestStore, InboundWebhookStore

log = logging.getLogger("hookhub.inbound")
PROCESS_BATCH = 10  # short write transactions: the receiver's commits never wait long


@dataclass(slots=True)
class InboundWebhook:
    id: int
    name: str
    source: str
    token: str
    secret: str | None
    options: dict[str, Any]
    rules: list[Any]
    rate_limit: float | None
    enabled: bool
    created_at: datetime
    updated_at: datetime

    def to_api(self, base_url: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "source": self.source,
            "url": f"{base_url}/in/{self.token}",
            "rules": self.rules,
            "options": self.options,
            "rate_limit": self.rate_limit,
            "enabled": self.enabled,
            "created_at": jsoncodec.isoformat(self.created_at),
            "updated_at": jsoncodec.isoformat(self.updated_at),
        }


def row_to_webhook(row: Row[Any]) -> InboundWebhook:
    return InboundWebhook(
        id=row.id,
        name=row.name,
        source=row.source,
        token=row.token,
        secret=row.secret,
        options=jsoncodec.loads(row.options),
        rules=jsoncodec.loads(row.rules),
        rate_limit=row.rate_limit,
        enabled=bool(row.enabled),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def request_to_api(row: Row[Any]) -> dict[str, Any]:
    body: bytes | None = row.body
    text: str | None = None
    if body is not None:
        text = body.decode("utf-8", errors="replace")
    return {
        "id": row.id,
        "webhook_id": row.webhook_id,
        "received_at": jsoncodec.isoformat(datetime.fromtimestamp(row.received_at, UTC)),
        "status": row.status,
        "http_status": row.http_status,
        "event_type": row.event_type,
        "dedupe_key": row.dedupe_key,
        "headers": dict(jsoncodec.loads(row.headers)),
        "body": text,
        "error": row.error,
        "error_expression": row.error_expression,
        "actions": jsoncodec.loads(row.actions) if row.actions else None,
        "processed_at": (
            jsoncodec.isoformat(datetime.fromtimestamp(row.processed_at, UTC))
            if row.processed_at
            else None
        ),
    }


class CrmFactory(Protocol):
    """Makes the contacts-core operations for one request, inside the caller's transaction.

    ``facts`` is shared by the requests processed in one transaction (see ``Outbox.writer``).
    """

    def __call__(
        self, conn: Connection, now: datetime, facts: dict[str, Any] | None = None
    ) -> CrmTx: ...


class InboundService:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        settings: Settings,
        *,
        crm_factory: CrmFactory,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.settings = settings
        self._crm = crm_factory
        self._rule_cache: dict[tuple[int, datetime], list[Rule]] = {}
        self.on_change: list[Callable[[str], None]] = []

    # -- configuration ---------------------------------------------------------------------

    def create(self, spec: Mapping[str, Any]) -> tuple[InboundWebhook, str | None]:
        source = str(spec.get("source"))
        provider = get_provider(source)
        rules = spec.get("rules")
        if rules is None:
            rules = preset_rules(source)
        compile_rules(rules)
        options = dict(spec.get("options") or {})
        secret = spec.get("secret")
        if secret is None and source != "generic":
            secret = ids.webhook_secret() if source == "standard" else ids.url_token()
        self._check_config(provider.name, secret, options)
        now = datetime.now(UTC)
        values = {
            "name": spec.get("name") or source,
            "source": source,
            "token": ids.url_token(),
            "secret": secret,
            "options": jsoncodec.dumps(options).decode(),
            "rules": jsoncodec.dumps(rules).decode(),
            "rate_limit": spec.get("rate_limit"),
            "enabled": bool(spec.get("enabled", True)),
            "created_at": now,
            "updated_at": now,
        }
        with self.db.write() as conn:
            webhook_id = InboundWebhookStore(conn).insert(values)
            row = InboundWebhookStore(conn).get(webhook_id)
        assert row is not None
        return row_to_webhook(row), secret

    @staticmethod
    def _check_config(source: str, secret: str | None, options: Mapping[str, Any]) -> None:
        """Refuse a secret or options the provider could never verify with (422, not 401).

        The probe is signed the provider's way, so verifying it reaches every check of the
        secret and the options (an unsigned one is refused at its first missing header).
        """
        provider = get_provider(source)
        now, body = time.time(), b"{}"
        try:
            headers = provider.sign(body, secret or "", now, options)
            provider.verify(RawRequest.build(headers, body), secret or "", now, options)
        except ValidationFailed:
            raise
        except HookhubError:
            pass  # verification itself is the receive path's business, not configuration's

    def get(self, webhook_id: int) -> InboundWebhook:
        with self.db.read() as conn:
            row = InboundWebhookStore(conn).get(webhook_id)
        if row is None:
            raise NotFound(
                f"No inbound webhook {webhook_id}.", details={"inbound_webhook_id": webhook_id}
            )
        return row_to_webhook(row)

    def by_token(self, token: str) -> InboundWebhook | None:
        with self.db.read() as conn:
            row = InboundWebhookStore(conn).by_token(token)
        return row_to_webhook(row) if row else None

    def page(self, *, after_id: int | None, limit: int) -> list[InboundWebhook]:
        with self.db.read() as conn:
            return [
                row_to_webhook(r)
                for r in InboundWebhookStore(conn).page(after_id=after_id, limit=limit)
            ]

    def update(self, webhook_id: int, changes: Mapping[str, Any]) -> InboundWebhook:
        current = self.get(webhook_id)
        values: dict[str, Any] = {}
        if changes.get("name"):
            values["name"] = changes["name"]
        if "rules" in changes:
            rules = changes["rules"]
            if rules is None:
                rules = preset_rules(current.source)
            compile_rules(rules)
            values["rules"] = jsoncodec.dumps(rules).decode()
        if "options" in changes:
            values["options"] = jsoncodec.dumps(dict(changes["options"] or {})).decode()
        if changes.get("secret"):
            values["secret"] = changes["secret"]
        if "rate_limit" in changes:
            values["rate_limit"] = changes["rate_limit"]
        if "enabled" in changes and changes["enabled"] is not None:
            values["enabled"] = bool(changes["enabled"])
        self._check_config(
            current.source,
            values.get("secret", current.secret),
            jsoncodec.loads(values["options"]) if "options" in values else current.options,
        )
        values["updated_at"] = datetime.now(UTC)
        with self.db.write() as conn:
            InboundWebhookStore(conn).update(webhook_id, values)
        self._changed(current.token)
        return self.get(webhook_id)

    def delete(self, webhook_id: int) -> None:
        current = self.get(webhook_id)
        with self.db.write() as conn:
            InboundWebhookStore(conn).delete(webhook_id)
        self._changed(current.token)

    def _changed(self, token: str) -> None:
        for callback in self.on_change:
            callback(token)

    # -- the request log -------------------------------------------------------------------

    def requests(
        self, webhook_id: int, *, status: str | None, before_id: int | None, limit: int
    ) -> list[dict[str, Any]]:
        self.get(webhook_id)
        with self.db.read() as conn:
            rows = InboundRequestStore(conn).page(
                webhook_id, status=status, before_id=before_id, limit=limit
            )
        return [request_to_api(r) for r in rows]

    def request(self, webhook_id: int, request_id: int) -> dict[str, Any]:
        with self.db.read() as conn:
            row = InboundRequestStore(conn).get(webhook_id, request_id)
        if row is None:
            raise NotFound(f"No request {request_id} for inbound webhook {webhook_id}.")
        return request_to_api(row)

    # -- running rules ---------------------------------------------------------------------

    def _rules(self, webhook: InboundWebhook) -> list[Rule]:
        key = (webhook.id, webhook.updated_at)
        rules = self._rule_cache.get(key)
        if rules is None:
            if len(self._rule_cache) > 1000:
                self._rule_cache.clear()
            rules = self._rule_cache[key] = compile_rules(webhook.rules)
        return rules

    def process_backlog(self) -> int:
        """Run the rules of acknowledged requests, oldest first per webhook; answers how many."""
        with self.db.read() as conn:
            webhook_ids = InboundRequestStore(conn).webhooks_with_backlog()
        done = 0
        for webhook_id in webhook_ids:
            done += self._process_webhook(webhook_id)
        return done

    def _process_webhook(self, webhook_id: int) -> int:
        with self.db.write() as conn:
            row = InboundWebhookStore(conn).lock_for_processing(webhook_id)
            if row is None:
                return 0  # deleted, or another process is working through it
            webhook = row_to_webhook(row)
            requests = InboundRequestStore(conn).backlog(webhook_id, PROCESS_BATCH)
            now = datetime.now(UTC)
            facts: dict[str, Any] = {}  # e.g. the endpoints' subscriptions, read once
            for request in requests:
                self._run(conn, now, webhook, request, facts)
        return len(requests)

    def _run(
        self,
        conn: Connection,
        now: datetime,
        webhook: InboundWebhook,
        request: Row[Any],
        facts: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Apply one request's rules in a savepoint; record processed or failed.

        Each request gets its own :class:`CrmTx`: what one caches (attribute types it defined,
        the outbox writer's per-transaction state) would otherwise outlive the savepoint of a
        failed request and mislead the next one.
        """
        store = InboundRequestStore(conn)
        finished = time.time()
        try:
            with conn.begin_nested():
                actions = self._actions(
                    self._crm(conn, now, facts),
                    webhook,
                    request.body or b"",
                    request.headers,
                    request.event_type,
                )
        except (HookhubError, DataError) as caught:
            exc = _as_failure(caught)
            expression = exc.expression if isinstance(exc, RuleError) else None
            rule = exc.rule if isinstance(exc, RuleError) else None
            message = exc.message.replace("\x00", "\ufffd")
            values = {
                "status": "failed",
                "error": message,
                "error_expression": expression,
                "actions": None,
                "processed_at": finished,
            }
            store.finish(request.id, values)
            self._crm(conn, now, facts).outbox.emit(
                "inbound.failed",
                {
                    "inbound_webhook_id": webhook.id,
                    "request_id": request.id,
                    "error": message,
                    "expression": expression,
                    "rule": rule,
                },
                now,
            )
            log.info(
                "inbound.failed", extra={"inbound_webhook_id": webhook.id, "request_id": request.id}
            )
            return values
        values = {
            "status": "processed",
            "error": None,
            "error_expression": None,
            "actions": jsoncodec.dumps(actions).decode(),
            "processed_at": finished,
        }
        store.finish(request.id, values)
        return values

    def _actions(
        self,
        crm: CrmTx,
        webhook: InboundWebhook,
        body: bytes,
        headers_json: str,
        event_type: str | None,
    ) -> list[dict[str, Any]]:
        provider = get_provider(webhook.source)
        request = RawRequest.build([tuple(h) for h in jsoncodec.loads(headers_json)], body)
        payload = provider.parse(request)
        plans = resolve(self._rules(webhook), payload, event_type)
        return apply_plans(crm, plans)

    def replay(self, webhook_id: int, request_id: int) -> dict[str, Any]:
        """Run the current rules on a logged request again (dedupe does not apply)."""
        webhook = self.get(webhook_id)
        with self.db.write() as conn:
            request = InboundRequestStore(conn).get(webhook_id, request_id)
            if request is None:
                raise NotFound(f"No request {request_id} for inbound webhook {webhook_id}.")
            if request.status in ("rejected",) or request.body is None:
                raise ValidationFailed(
                    f"Only accepted requests can be replayed; this one was {request.status}.",
                    details={"status": request.status},
                )
            if request.status == "received":
                # The processor will run it; running it here too could run it twice.
                raise Conflict(
                    "This request has not been processed yet; replay it once it has.",
                    details={"status": request.status},
                )
            self._run(conn, datetime.now(UTC), webhook, request)
        return self.request(webhook_id, request_id)

    def preview(self, webhook_id: int, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        """What the rules would do with this body; every change is rolled back."""
        webhook = self.get(webhook_id)
        provider = get_provider(webhook.source)
        request = RawRequest.build(headers, body)
        result: dict[str, Any] = {"matched": [], "actions": [], "messages": [], "error": None}
        try:
            payload = provider.parse(request)
            event_type = provider.event_type(request, payload, webhook.options)
            result["event_type"] = event_type
            plans = resolve(self._rules(webhook), payload, event_type)
            result["matched"] = [plan.to_api() for plan in plans]
        except HookhubError as exc:
            result["error"] = _error(exc)
            return result
        with self.db.dry_run() as conn:
            crm = self._crm(conn, datetime.now(UTC))
            try:
                result["actions"] = apply_plans(crm, plans)
            except (HookhubError, DataError) as exc:
                # The real run would keep none of it, and record the failure instead.
                result["error"] = _error(_as_failure(exc))
                return result
            result["messages"] = [
                {"type": m.type, "payload": jsoncodec.loads(m.payload)} for m in crm.outbox.written
            ]
        return result


def _as_failure(exc: HookhubError | DataError) -> HookhubError:
    """A database's refusal of a payload's value, as the failure the request log records.

    Such a value (a NUL character for PostgreSQL, a number out of a column's range) is a fault
    of this request, not of the database: failing the whole batch would retry it forever and
    hold back every request behind it.
    """
    if isinstance(exc, HookhubError):
        return exc
    reason = str(exc.orig).splitlines()[0] if exc.orig is not None else type(exc).__name__
    return ValidationFailed(f"The database refused a value from this payload: {reason}")


def _error(exc: HookhubError) -> dict[str, Any]:
    return {
        "message": exc.message,
        "expression": exc.expression if isinstance(exc, RuleError) else None,
        "rule": exc.rule if isinstance(exc, RuleError) else None,
    }
