"""Inbound webhooks: their configuration and their request log.

Running their rules on logged requests (the backlog, replay, preview) is
:class:`hookhub.inbound.runner.RuleRunner`'s job; this service hands it the compiled rules.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row

from hookhub import ids
from hookhub.config import Settings
from hookhub.core import jsoncodec
from hookhub.errors import HookhubError, NotFound, ValidationFailed
from hookhub.inbound.presets import preset_rules
from hookhub.inbound.providers import get_provider
from hookhub.inbound.providers.base import RawRequest
from hookhub.inbound.rules import Rule, compile_rules
from hookhub.inbound.runner import CrmFactory, RuleRunner
from hookhub.outbound.outbox import Outbox
from hookhub.store.database import Database
from hookhub.store.inbound import InboundRequestStore, InboundWebhookStore

if TYPE_CHECKING:
    from hookhub.automation.registry import AutomationRegistry

log = logging.getLogger("hookhub.inbound")


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
    """A logged request with its body (as text)."""
    body: bytes | None = row.body
    text: str | None = None
    if body is not None:
        text = body.decode("utf-8", errors="replace")
    return {**request_summary_to_api(row, None if body is None else len(body)), "body": text}


def request_summary_to_api(row: Row[Any], body_size: int | None) -> dict[str, Any]:
    """A logged request as lists show it: the body's size in bytes, not the body."""
    return {
        "id": row.id,
        "webhook_id": row.webhook_id,
        "received_at": jsoncodec.isoformat(datetime.fromtimestamp(row.received_at, UTC)),
        "status": row.status,
        "http_status": row.http_status,
        "event_type": row.event_type,
        "dedupe_key": row.dedupe_key,
        "headers": dict(jsoncodec.loads(row.headers)),
        "body_size": body_size,
        "error": row.error,
        "error_expression": row.error_expression,
        "actions": jsoncodec.loads(row.actions) if row.actions else None,
        "processed_at": (
            jsoncodec.isoformat(datetime.fromtimestamp(row.processed_at, UTC))
            if row.processed_at
            else None
        ),
    }


class InboundService:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        settings: Settings,
        *,
        crm_factory: CrmFactory,
        automations: AutomationRegistry | None = None,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.settings = settings
        self._crm = crm_factory
        self._rule_cache: dict[tuple[int, datetime], list[Rule]] = {}
        self.on_change: list[Callable[[str], None]] = []
        self.runner = RuleRunner(
            db,
            crm_factory=crm_factory,
            rules_for=self._rules,
            load_webhook=row_to_webhook,
            email_from=settings.email_from,
            automations=automations,
        )

    # -- configuration ---------------------------------------------------------------------

    def _require_templates(self, rules: list[Rule]) -> None:
        """send_email names templates that exist (422 naming the rule otherwise)."""
        wanted = {i: r.send_email.template_id for i, r in enumerate(rules) if r.send_email}
        if not wanted:
            return
        from hookhub.store.email_reads import EmailReads

        with self.db.read() as conn:
            found = EmailReads(conn).template_versions(wanted.values())
        for index, template_id in wanted.items():
            if template_id not in found:
                where = f"rules[{index}].send_email.template_id"
                raise ValidationFailed(
                    f"{where}: no email template {template_id}", details={"path": where}
                )

    def _require_automations(self, rules: list[Rule]) -> None:
        """start_automation names automations that exist (422 naming the rule otherwise)."""
        wanted = {i: r.start_automation for i, r in enumerate(rules) if r.start_automation}
        if not wanted:
            return
        from hookhub.store.automation_triggers import live_automations

        with self.db.read() as conn:
            found = live_automations(conn, [a for a in wanted.values() if a is not None])
        for index, automation_id in wanted.items():
            if automation_id not in found:
                where = f"rules[{index}].start_automation"
                raise ValidationFailed(
                    f"{where}: no automation {automation_id}", details={"path": where}
                )

    def _require_references(self, rules: list[Rule]) -> None:
        self._require_templates(rules)
        self._require_automations(rules)

    def create(self, spec: Mapping[str, Any]) -> tuple[InboundWebhook, str | None]:
        """The new webhook and the secret to show once: a generated one, or the one given
        unless its source keeps it unechoed (keys copied from the sender's dashboard)."""
        source = str(spec.get("source"))
        provider = get_provider(source)
        rules = spec.get("rules")
        if rules is None:
            rules = preset_rules(source)
        self._require_references(compile_rules(rules))
        options = dict(spec.get("options") or {})
        secret = spec.get("secret")
        provider.check_secret(secret, options)
        shown = secret if provider.echoes_secret else None
        if secret is None and source == "postmark":
            secret = shown = "hookhub:" + ids.url_token()  # basic auth: user:password
        elif secret is None and source != "generic":
            secret = shown = ids.webhook_secret() if source == "standard" else ids.url_token()
        if source == "generic" and not secret and options.get("auth") != "none":
            # Such a webhook accepts anyone who learns its URL: only when asked in so many words.
            raise ValidationFailed(
                "A generic inbound webhook without a secret accepts every request: give a"
                ' secret, or set "options": {"auth": "none"} to accept unauthenticated requests.',
                details={"field": "options.auth"},
            )
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
        return row_to_webhook(row), shown

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

    def unlogged(self, webhook_id: int, since: float) -> dict[str, int]:
        """Requests of ``webhook_id`` answered but not logged since ``since`` (to the minute):
        ``rate_limited`` ones, and ``refused`` ones past the number logged a minute."""
        with self.db.read() as conn:
            counts = InboundWebhookStore(conn).unlogged(webhook_id, since)
        return {"rate_limited": counts.get("rate_limited", 0), "refused": counts.get("refused", 0)}

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
            self._require_references(compile_rules(rules))
            values["rules"] = jsoncodec.dumps(rules).decode()
        if "options" in changes:
            values["options"] = jsoncodec.dumps(dict(changes["options"] or {})).decode()
        if changes.get("secret"):
            get_provider(current.source).check_secret(changes["secret"], current.options)
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
        return [request_summary_to_api(r, r.body_size) for r in rows]

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
        return self.runner.process_backlog()

    def replay(self, webhook_id: int, request_id: int) -> dict[str, Any]:
        """Run the current rules on a logged request again (dedupe does not apply)."""
        self.runner.replay(self.get(webhook_id), request_id)
        return self.request(webhook_id, request_id)

    def preview(
        self,
        webhook_id: int,
        body: bytes,
        headers: Mapping[str, str],
        *,
        rules: list[Any] | None = None,
    ) -> dict[str, Any]:
        """What the rules would do with this body; every change is rolled back.

        ``rules``: a draft rule set to try instead of the saved one (the dashboard's rule
        editor); it is compiled and checked as a save would (422 naming the faulty path).
        """
        draft = None
        if rules is not None:
            draft = compile_rules(rules)
            self._require_references(draft)
        return self.runner.preview(self.get(webhook_id), body, headers, rules=draft)
