"""Running inbound rules on logged requests: whatever one request does, only that request fails.

Rules run *after* a request is acknowledged, from the durable request log, in arrival order per
webhook (:meth:`RuleRunner.process_backlog`). Each request's actions and the outbox messages
they cause commit together: a savepoint per request inside a batch transaction. A request whose
rules fail, for any reason (a rule error, a value the database refuses, an OverflowError or a
MemoryError from evaluating an expression on its payload), is marked ``failed`` with the reason
and an ``inbound.failed`` event, and nothing it started is kept.

Failures are contained at every level: the request (savepoint), the batch (should the batch
transaction itself fail, its requests are run again one transaction each, and a request that
still fails is marked failed on its own) and the webhook (one webhook's trouble never holds up
the others). A database that cannot be reached is nobody's fault: those errors are raised to
the processing loop, whose backoff retries the same requests later, and never recorded against
a request. Preview runs the same code in a transaction that is always rolled back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection, Row
from sqlalchemy.exc import DataError, PendingRollbackError

from hookhub.core import jsoncodec
from hookhub.core.origin import Origin
from hookhub.crm.operations import CrmTx
from hookhub.errors import Conflict, HookhubError, NotFound, ValidationFailed
from hookhub.inbound.actions import DEFAULT_EMAIL_FROM, apply_plans
from hookhub.inbound.bulk import run_batch
from hookhub.inbound.providers import get_provider
from hookhub.inbound.providers.base import RawRequest
from hookhub.inbound.rules import Plan, Rule, RuleError, RuleTooCostly, resolve
from hookhub.inbound.start_automation import InboundSource
from hookhub.store.database import Database, is_transient, light_savepoint
from hookhub.store.inbound import InboundRequestStore, InboundWebhookStore, Outcome

if TYPE_CHECKING:
    from hookhub.automation.registry import AutomationRegistry

log = logging.getLogger("hookhub.inbound")
PROCESS_BATCH = 100
"""Requests read per batch transaction: each transaction's fixed cost (lock, backlog read,
commit: ~2 ms) is shared by up to this many requests (it was 10: ~200 us a request)."""
MIN_BATCH = 10
BATCH_SECONDS = 0.02
"""...but past MIN_BATCH requests, a batch starts no further request after this long, so the
write transaction stays short and the receiver's commits never wait long behind it (SQLite:
one writer)."""
MAX_ERROR_LENGTH = 2000


class CrmFactory(Protocol):
    """Makes the contacts-core operations for one request, inside the caller's transaction.

    ``facts`` is shared by the requests processed in one transaction (see ``Outbox.writer``).
    """

    def __call__(
        self,
        conn: Connection,
        now: datetime,
        facts: dict[str, Any] | None = None,
        origin: Origin | None = None,
    ) -> CrmTx: ...


class RunnableWebhook(Protocol):
    """What running rules needs to know of an inbound webhook."""

    @property
    def id(self) -> int: ...

    @property
    def name(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def options(self) -> dict[str, Any]: ...


def is_database_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is unreachable or unusable right now.

    Such an error is the database's, not the request's: the batch is retried later as it is.
    """
    # PendingRollbackError: the connection's transaction broke underneath us.
    return is_transient(exc) or isinstance(exc, PendingRollbackError)


class RuleRunner:
    def __init__(
        self,
        db: Database,
        *,
        crm_factory: CrmFactory,
        rules_for: Callable[[Any], list[Rule]],
        load_webhook: Callable[[Row[Any]], RunnableWebhook],
        email_from: str = DEFAULT_EMAIL_FROM,
        automations: AutomationRegistry | None = None,
    ) -> None:
        self.db = db
        self.email_from = email_from
        self.automations = automations
        self._crm = crm_factory
        self._rules_for = rules_for
        self._load = load_webhook

    # -- the backlog -------------------------------------------------------------------------

    def process_backlog(self) -> int:
        """Run the rules of acknowledged requests, oldest first per webhook; answers how many.

        A webhook whose batch cannot be processed is logged and left for the next pass; the
        others go on. Only a database outage ends the pass (raised to the caller's backoff).
        """
        with self.db.read() as conn:
            webhook_ids = InboundRequestStore(conn).webhooks_with_backlog()
        done = 0
        for webhook_id in webhook_ids:
            try:
                done += self._process_webhook(webhook_id)
            except Exception as exc:
                if is_database_outage(exc):
                    raise
                log.exception("inbound.webhook_failed", extra={"inbound_webhook_id": webhook_id})
        return done

    def _process_webhook(self, webhook_id: int) -> int:
        try:
            with self.db.write() as conn:
                row = InboundWebhookStore(conn).lock_for_processing(webhook_id)
                if row is None:
                    return 0  # deleted, or another process is working through it
                webhook = self._load(row)
                store = InboundRequestStore(conn)
                requests = store.backlog(webhook_id, PROCESS_BATCH)
                now = datetime.now(UTC)
                facts: dict[str, Any] = {}  # e.g. the endpoints' subscriptions, read once
                deadline = time.monotonic() + BATCH_SECONDS
                origin = Origin("inbound", webhook.id, webhook.name)
                outcomes = run_batch(
                    conn,
                    requests,
                    crm_for=lambda: self._crm(conn, now, facts, origin),
                    plans_for=lambda request: self._plans(webhook, request)[1],
                    run_one=lambda request: self._run(conn, now, webhook, request, facts),
                    keep_going=lambda done: done < MIN_BATCH or time.monotonic() < deadline,
                )
                store.finish_many(outcomes)
            return len(outcomes)
        except Exception as exc:
            if is_database_outage(exc):
                raise
            log.warning(
                "inbound.batch_failed",
                exc_info=True,
                extra={"inbound_webhook_id": webhook_id},
            )
        return self._process_one_by_one(webhook_id)

    def _process_one_by_one(self, webhook_id: int) -> int:
        """The batch transaction failed: each request in a transaction of its own."""
        done = 0
        for _ in range(MIN_BATCH):
            request_id: int | None = None
            try:
                with self.db.write() as conn:
                    row = InboundWebhookStore(conn).lock_for_processing(webhook_id)
                    if row is None:
                        return done
                    requests = InboundRequestStore(conn).backlog(webhook_id, 1)
                    if not requests:
                        return done
                    request_id = requests[0].id
                    self.run(conn, datetime.now(UTC), self._load(row), requests[0])
            except Exception as exc:
                if is_database_outage(exc):
                    raise
                log.warning(
                    "inbound.request_crashed",
                    exc_info=True,
                    extra={"inbound_webhook_id": webhook_id, "request_id": request_id},
                )
                if request_id is None:
                    raise  # not about a request: the webhook's turn ends here
                self._mark_failed(webhook_id, request_id, _unexpected(exc).message)
            done += 1
        return done

    def _mark_failed(self, webhook_id: int, request_id: int, message: str) -> None:
        """The last resort: record the failure alone (no event: emitting it is what failed)."""
        with self.db.write() as conn:
            InboundRequestStore(conn).finish_many(
                [Outcome(request_id, "failed", _clean(message), None, None, time.time())]
            )
        log.info(
            "inbound.failed", extra={"inbound_webhook_id": webhook_id, "request_id": request_id}
        )

    # -- one request ---------------------------------------------------------------------------

    def run(
        self,
        conn: Connection,
        now: datetime,
        webhook: RunnableWebhook,
        request: Row[Any],
        facts: dict[str, Any] | None = None,
    ) -> Outcome:
        """Apply one request's rules in a savepoint; record processed or failed."""
        outcome = self._run(conn, now, webhook, request, facts)
        InboundRequestStore(conn).finish_many([outcome])
        return outcome

    def _run(
        self,
        conn: Connection,
        now: datetime,
        webhook: RunnableWebhook,
        request: Row[Any],
        facts: dict[str, Any] | None = None,
    ) -> Outcome:
        """Apply one request's rules in a savepoint; answers the outcome to record.

        The caller records it in the same transaction (a batch records all its outcomes in
        one statement). Each request gets its own :class:`CrmTx`: what one caches (attribute
        types it defined, the outbox writer's per-transaction state) would otherwise outlive
        the savepoint of a failed request and mislead the next one.
        """
        finished = time.time()
        origin = Origin("inbound", webhook.id, webhook.name)
        try:
            with light_savepoint(conn, "hookhub_request"):
                actions = self._actions(
                    self._crm(conn, now, facts, origin),
                    webhook,
                    request.body or b"",
                    request.headers,
                    request.event_type,
                    request.id,
                )
                # Serialized here, inside the savepoint: a value that cannot be stored is
                # this request's failure too.
                actions_json = jsoncodec.dumps(actions).decode()
        except Exception as caught:
            if is_database_outage(caught):
                raise
            if not isinstance(caught, HookhubError | DataError):
                log.warning(
                    "inbound.rule_crashed",
                    exc_info=True,
                    extra={"inbound_webhook_id": webhook.id, "request_id": request.id},
                )
            exc = as_failure(caught)
            expression = exc.expression if isinstance(exc, RuleError) else None
            rule = exc.rule if isinstance(exc, RuleError) else None
            message = _clean(exc.message)
            self._crm(conn, now, facts, origin).outbox.emit(
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
            return Outcome(request.id, "failed", message, expression, None, finished)
        return Outcome(request.id, "processed", None, None, actions_json, finished)

    def _actions(
        self,
        crm: CrmTx,
        webhook: RunnableWebhook,
        body: bytes,
        headers_json: str,
        event_type: str | None,
        request_id: int,
    ) -> list[dict[str, Any]]:
        payload, plans = self._resolve(webhook, body, headers_json, event_type)
        source = InboundSource(webhook.id, request_id, payload)
        return apply_plans(
            crm, plans, email_from=self.email_from, source=source, automations=self.automations
        )

    def _plans(self, webhook: RunnableWebhook, request: Row[Any]) -> tuple[Any, list[Plan]]:
        return self._resolve(webhook, request.body or b"", request.headers, request.event_type)

    def _resolve(
        self, webhook: RunnableWebhook, body: bytes, headers_json: str, event_type: str | None
    ) -> tuple[Any, list[Plan]]:
        """The request's payload and what its rules resolve to (no database involved)."""
        provider = get_provider(webhook.source)
        request = RawRequest.build([tuple(h) for h in jsoncodec.loads(headers_json)], body)
        payload = provider.parse(request)
        return payload, resolve(self._rules_for(webhook), payload, event_type)

    def replay(self, webhook: RunnableWebhook, request_id: int) -> None:
        """Run the current rules on a logged request again (dedupe does not apply)."""
        with self.db.write() as conn:
            request = InboundRequestStore(conn).get(webhook.id, request_id)
            if request is None:
                raise NotFound(f"No request {request_id} for inbound webhook {webhook.id}.")
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
            self.run(conn, datetime.now(UTC), webhook, request)

    # -- preview -------------------------------------------------------------------------------

    def preview(
        self,
        webhook: RunnableWebhook,
        body: bytes,
        headers: Mapping[str, str],
        *,
        rules: list[Rule] | None = None,
    ) -> dict[str, Any]:
        """What the rules (``rules``, or else the webhook's saved ones) would do with this
        body; every change is rolled back.

        An expression past its evaluation budget is refused (422) rather than described: the
        rule set needs changing before any payload can be tried.
        """
        provider = get_provider(webhook.source)
        request = RawRequest.build(headers, body)
        result: dict[str, Any] = {"matched": [], "actions": [], "messages": [], "error": None}
        try:
            payload = provider.parse(request)
            event_type = provider.event_type(request, payload, webhook.options)
            result["event_type"] = event_type
            compiled = self._rules_for(webhook) if rules is None else rules
            plans = resolve(compiled, payload, event_type)
            result["matched"] = [plan.to_api() for plan in plans]
        except RuleTooCostly:
            raise
        except HookhubError as exc:
            result["error"] = _error(exc)
            return result
        with self.db.dry_run() as conn:
            crm = self._crm(
                conn, datetime.now(UTC), None, Origin("inbound", webhook.id, webhook.name)
            )
            try:
                result["actions"] = apply_plans(
                    crm,
                    plans,
                    email_from=self.email_from,
                    source=InboundSource(webhook.id, None, payload),
                    automations=self.automations,
                )
            except Exception as exc:
                if is_database_outage(exc):
                    raise
                # The real run would keep none of it, and record the failure instead.
                result["error"] = _error(as_failure(exc))
                return result
            result["messages"] = [
                {"type": m.type, "payload": jsoncodec.loads(m.payload)} for m in crm.outbox.written
            ]
        return result


def as_failure(exc: BaseException) -> HookhubError:
    """Any error of one request's run, as the failure the request log records.

    A database's refusal of a payload's value (a NUL character for PostgreSQL, a number out of
    a column's range) is a fault of this request, not of the database: failing the whole batch
    would retry it forever and hold back every request behind it. So is anything else its
    payload provoked.
    """
    if isinstance(exc, HookhubError):
        return exc
    if isinstance(exc, DataError):
        reason = str(exc.orig).splitlines()[0] if exc.orig is not None else type(exc).__name__
        return ValidationFailed(f"The database refused a value from this payload: {reason}")
    return _unexpected(exc)


def _unexpected(exc: BaseException) -> HookhubError:
    if isinstance(exc, HookhubError):
        return exc
    detail = str(exc).splitlines()[0][:200] if str(exc) else ""
    return ValidationFailed(
        f"The rules could not be applied to this payload ({type(exc).__name__}"
        + (f": {detail})" if detail else ")")
    )


def _clean(message: str) -> str:
    """Storable in a text column of either database, and of a bounded length."""
    return message.replace("\x00", "\ufffd")[:MAX_ERROR_LENGTH]


def _error(exc: HookhubError) -> dict[str, Any]:
    return {
        "message": exc.message,
        "expression": exc.expression if isinstance(exc, RuleError) else None,
        "rule": exc.rule if isinstance(exc, RuleError) else None,
    }
