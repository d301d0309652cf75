"""The rule action ``send_email``: compiling it when rules are saved, queueing its email.

``{"template_id": 2, "to": "<expression; default: the rule's contact>", "params": {"order_id":
"data.object.id"}}``: the email is queued in the rule's transaction (its savepoint), so a rule
that fails queues nothing and a preview shows it without queueing it. Whether the template
exists is checked when the rules are saved (``InboundService``), and again when queueing.

This module must never send anything or commit: queueing is a row in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hookhub.errors import HookhubError, ValidationFailed
from hookhub.inbound.rule_expressions import Expression, RuleError, compile_expression

if TYPE_CHECKING:
    from hookhub.core.expressions import Budget
    from hookhub.crm.operations import CrmTx
    from hookhub.inbound.rules import Plan
    from hookhub.records.contacts import Contact

_KEYS = frozenset({"template_id", "to", "params"})
MAX_PARAMS = 100


@dataclass(frozen=True, slots=True)
class EmailSpec:
    """``send_email``: a template, to ``to`` (default: the rule's contact), with params."""

    template_id: int
    to: Expression | None
    params: dict[str, Expression]


def _fail(where: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{where}: {message}", details={"path": where})


def compile_send_email(value: Any, where: str) -> EmailSpec:
    if not isinstance(value, Mapping):
        raise _fail(where, "must be an object")
    extra = set(value) - _KEYS
    if extra:
        raise _fail(where, f"unknown keys {sorted(map(str, extra))}")
    template_id = value.get("template_id")
    if not isinstance(template_id, int) or isinstance(template_id, bool) or template_id < 1:
        raise _fail(f"{where}.template_id", "must be an email template id")
    to = compile_expression(value["to"], f"{where}.to") if value.get("to") is not None else None
    params = value.get("params") or {}
    if not isinstance(params, Mapping) or len(params) > MAX_PARAMS:
        raise _fail(f"{where}.params", f"must be an object of at most {MAX_PARAMS} expressions")
    compiled: dict[str, Expression] = {}
    for key, expression in params.items():
        if not isinstance(key, str) or not key or len(key) > 255:
            raise _fail(f"{where}.params", f"{key!r} is not a valid name")
        compiled[key] = compile_expression(expression, f"{where}.params.{key}")
    return EmailSpec(template_id=template_id, to=to, params=compiled)


def resolve_send_email(spec: EmailSpec, payload: Any, budget: Budget, plan: Plan) -> None:
    """Fill in ``plan``'s email from ``payload`` (no database)."""
    plan.email_template_id = spec.template_id
    if spec.to is not None:
        plan.email_to = spec.to.search(payload, budget)
        plan.expressions["send_email.to"] = spec.to.source
    plan.email_params = {key: e.search(payload, budget) for key, e in spec.params.items()}


def send_email_plan(plan: Plan) -> dict[str, Any]:
    """What a preview shows of the email a plan would queue."""
    return {"template_id": plan.email_template_id, "to": plan.email_to, "params": plan.email_params}


def queue_email(crm: CrmTx, plan: Plan, contact: Contact | None, email_from: str) -> dict[str, Any]:
    """Queue the rule's email in this transaction; what was queued (or skipped, and why)."""
    from hookhub.email.service import SendRequest, queue_emails

    to = plan.email_to if plan.email_to is not None else (contact.email if contact else None)
    expression = plan.expressions.get("send_email.to")
    if not isinstance(to, str) or not to.strip() or "\x00" in to:
        problem = "resolved to null" if to is None else f"is not an address: {str(to)[:60]!r}"
        raise RuleError(f"send_email.to {problem}", expression=expression, rule=plan.rule)
    request = SendRequest(
        to=[(to, None)], template_id=plan.email_template_id, params=plan.email_params
    )
    try:
        [email] = queue_emails(crm.conn, request, crm.now, email_from=email_from)
    except HookhubError as exc:
        raise RuleError(
            f"send_email: {exc.message}", expression=expression, rule=plan.rule
        ) from exc
    return {"email_id": email.id, "to": email.to_email, "status": email.status}
