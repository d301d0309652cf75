"""Inbound rules: compile them when saved, resolve them against a payload without side effects.

A rule (DESIGN.md, "Rules") says when it applies (``when``: a JMESPath condition; optionally
``event_types``: the provider's event types) and what to do: upsert a contact from mapped
values, add it to lists, record a custom event, queue an email from a template, start an
automation (``start_automation.py``). Every mapping
value is a JMESPath expression over the payload; write literals in JMESPath's own syntax
(``'text'``, `` `42` ``).

:func:`compile_rules` refuses a rule set with a clear error pointing at the faulty path, so a
broken expression is caught when saved, not when a provider calls. :func:`resolve` turns a
payload into :class:`Plan` objects; applying them to the database is ``actions.py``'s job.
Evaluation errors name the rule and the expression at fault (one expression's compiling and
evaluation: ``rule_expressions.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from hookhub.core.contacts import ATTRIBUTE_NAME, EVENT_NAME
from hookhub.core.expressions import Budget, is_truthy
from hookhub.errors import ValidationFailed
from hookhub.inbound.email_events import EmailEventSpec, compile_spec
from hookhub.inbound.rule_expressions import (
    Expression,
    RuleError,
    RuleTooCostly,
    compile_expression,
)
from hookhub.inbound.send_email import (
    EmailSpec,
    compile_send_email,
    resolve_send_email,
    send_email_plan,
)
from hookhub.inbound.start_automation import compile_start_automation

__all__ = [
    "Expression",
    "Plan",
    "Rule",
    "RuleError",
    "RuleTooCostly",
    "compile_rule",
    "compile_rules",
    "matches",
    "resolve",
]

MAX_RULES = 50
MAX_MAPPINGS = 100
MAX_ITEMS = 10_000  # what one for_each may iterate (a provider's batch is a few hundred)
ContactMode = Literal["upsert", "update_only", "create_only"]
_RULE_KEYS = frozenset(
    {
        "name",
        "when",
        "event_types",
        "contact",
        "add_to_lists",
        "event",
        "send_email",
        "start_automation",
        "email_event",
        "for_each",
    }
)
_CONTACT_KEYS = frozenset({"email", "ext_id", "attributes", "attributes_from", "mode"})
_EVENT_KEYS = frozenset({"name", "properties", "date"})
NOT_YET: dict[str, str] = {}
"""Rule keys this version refuses, with the reason."""


@dataclass(frozen=True, slots=True)
class ContactSpec:
    email: Expression | None
    ext_id: Expression | None
    attributes: dict[str, Expression]
    attributes_from: tuple[Expression, ...]
    mode: ContactMode


@dataclass(frozen=True, slots=True)
class EventSpec:
    name: str
    properties: dict[str, Expression]
    date: Expression | None


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    when: Expression | None
    event_types: tuple[str, ...]
    contact: ContactSpec | None
    add_to_lists: tuple[int, ...]
    event: EventSpec | None
    email_event: EmailEventSpec | None = None
    for_each: Expression | None = None
    """Evaluated on the payload, a list: the rule applies to each item as if it were the
    payload (a batch of provider events in one request)."""
    send_email: EmailSpec | None = None
    start_automation: int | None = None


@dataclass(slots=True)
class Plan:
    """What one matching rule resolved to for one payload (no database involved)."""

    rule: str
    email: Any = None
    ext_id: Any = None
    attributes: dict[str, Any] = field(default_factory=dict)
    skipped_attributes: list[str] = field(default_factory=list)
    mode: ContactMode = "upsert"
    add_to_lists: tuple[int, ...] = ()
    event_name: str | None = None
    event_properties: dict[str, Any] = field(default_factory=dict)
    event_date: datetime | None = None
    email_template_id: int | None = None
    email_to: Any = None
    """The resolved ``send_email.to`` (None: the rule's contact)."""
    email_params: dict[str, Any] = field(default_factory=dict)
    expressions: dict[str, str] = field(default_factory=dict)
    contact_mapped: bool = True
    email_event: dict[str, Any] | None = None
    item: int | None = None
    """The index of the ``for_each`` item this plan is for."""
    automation_id: int | None = None
    """``start_automation``: the automation to enrol the rule's contact in."""

    def to_api(self) -> dict[str, Any]:
        plan: dict[str, Any] = {"rule": self.rule}
        if self.item is not None:
            plan["item"] = self.item
        if self.email_event is not None:
            plan["email_event"] = self.email_event
        if self.email is not None or self.ext_id is not None:
            plan["contact"] = {
                "email": self.email,
                "ext_id": self.ext_id,
                "mode": self.mode,
                "attributes": self.attributes,
            }
            if self.skipped_attributes:
                plan["contact"]["skipped_attributes"] = self.skipped_attributes
        if self.add_to_lists:
            plan["add_to_lists"] = list(self.add_to_lists)
        if self.event_name:
            plan["event"] = {
                "name": self.event_name,
                "properties": self.event_properties,
                "date": self.event_date.isoformat() if self.event_date else None,
            }
        if self.email_template_id is not None:
            plan["send_email"] = send_email_plan(self)
        if self.automation_id is not None:
            plan["start_automation"] = {"automation_id": self.automation_id}
        return plan


# -- compiling ----------------------------------------------------------------------------------


def _fail(where: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{where}: {message}", details={"path": where})


_expression = compile_expression


def _mapping(value: Any, where: str, *, names: bool) -> dict[str, Expression]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or len(value) > MAX_MAPPINGS:
        raise _fail(where, f"must be an object of at most {MAX_MAPPINGS} expressions")
    out: dict[str, Expression] = {}
    for key, expr in value.items():
        if not isinstance(key, str) or not key or len(key) > 255:
            raise _fail(where, f"{key!r} is not a valid name")
        if names and not ATTRIBUTE_NAME.match(key):
            raise _fail(f"{where}.{key}", "attribute names are letters, digits and _")
        out[key.upper() if names else key] = _expression(expr, f"{where}.{key}")
    return out


def _contact(value: Any, where: str) -> ContactSpec:
    if not isinstance(value, Mapping):
        raise _fail(where, "must be an object")
    extra = set(value) - _CONTACT_KEYS
    if extra:
        raise _fail(where, f"unknown keys {sorted(map(str, extra))}")
    mode = value.get("mode", "upsert")
    if mode not in ("upsert", "update_only", "create_only"):
        raise _fail(f"{where}.mode", "must be upsert, update_only or create_only")
    email = _expression(value["email"], f"{where}.email") if "email" in value else None
    ext_id = _expression(value["ext_id"], f"{where}.ext_id") if "ext_id" in value else None
    if email is None and ext_id is None:
        raise _fail(where, "needs an email (or ext_id) expression")
    sources = value.get("attributes_from", [])
    if isinstance(sources, str):
        sources = [sources]
    if not isinstance(sources, list) or len(sources) > 10:
        raise _fail(f"{where}.attributes_from", "must be a list of at most 10 expressions")
    return ContactSpec(
        email=email,
        ext_id=ext_id,
        attributes=_mapping(value.get("attributes"), f"{where}.attributes", names=True),
        attributes_from=tuple(
            _expression(s, f"{where}.attributes_from[{i}]") for i, s in enumerate(sources)
        ),
        mode=mode,
    )


def _event(value: Any, where: str) -> EventSpec:
    if not isinstance(value, Mapping):
        raise _fail(where, "must be an object")
    extra = set(value) - _EVENT_KEYS
    if extra:
        raise _fail(where, f"unknown keys {sorted(map(str, extra))}")
    name = value.get("name")
    if not isinstance(name, str) or not EVENT_NAME.match(name):
        raise _fail(f"{where}.name", "must be 1 to 255 letters, digits, '_' or '-'")
    date = _expression(value["date"], f"{where}.date") if value.get("date") else None
    return EventSpec(
        name=name,
        properties=_mapping(value.get("properties"), f"{where}.properties", names=False),
        date=date,
    )


def compile_rule(raw: Any, index: int) -> Rule:
    where = f"rules[{index}]"
    if not isinstance(raw, Mapping):
        raise _fail(where, "must be an object")
    extra = set(raw) - _RULE_KEYS
    if extra:
        raise _fail(where, f"unknown keys {sorted(map(str, extra))}")
    for key, reason in NOT_YET.items():
        if raw.get(key) is not None:
            raise _fail(f"{where}.{key}", reason)
    name = raw.get("name", f"rule {index + 1}")
    if not isinstance(name, str) or len(name) > 255:
        raise _fail(f"{where}.name", "must be a string of at most 255 characters")
    event_types = raw.get("event_types", [])
    if not isinstance(event_types, list) or not all(
        isinstance(t, str) and 0 < len(t) <= 255 for t in event_types
    ):
        raise _fail(f"{where}.event_types", "must be a list of event type names")
    lists = raw.get("add_to_lists", [])
    if not isinstance(lists, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and 0 < i < 2**63 for i in lists
    ):
        raise _fail(f"{where}.add_to_lists", "must be a list of list ids")
    contact = _contact(raw["contact"], f"{where}.contact") if raw.get("contact") else None
    event = _event(raw["event"], f"{where}.event") if raw.get("event") else None
    for_each = raw.get("for_each")
    email_event = raw.get("email_event")
    if email_event is not None:
        email_event = compile_spec(email_event, f"{where}.email_event")
    if contact is None and (lists or event is not None):
        raise _fail(where, "add_to_lists and event need a contact to act on")
    email = None
    if raw.get("send_email") is not None:
        email = compile_send_email(raw["send_email"], f"{where}.send_email")
        if email.to is None and contact is None:
            raise _fail(f"{where}.send_email", "needs a to expression, or a contact to send to")
    start = raw.get("start_automation")
    if start is not None:
        start = compile_start_automation(start, f"{where}.start_automation")
        if contact is None:
            raise _fail(f"{where}.start_automation", "needs a contact to enrol")
    return Rule(
        name=name,
        when=_expression(raw["when"], f"{where}.when") if raw.get("when") else None,
        event_types=tuple(event_types),
        contact=contact,
        add_to_lists=tuple(lists),
        event=event,
        email_event=email_event,
        for_each=None if for_each is None else _expression(for_each, f"{where}.for_each"),
        send_email=email,
        start_automation=start,
    )


def compile_rules(raw: Any) -> list[Rule]:
    if not isinstance(raw, list):
        raise ValidationFailed("rules must be a list.", details={"path": "rules"})
    if len(raw) > MAX_RULES:
        raise ValidationFailed(f"At most {MAX_RULES} rules.", details={"path": "rules"})
    return [compile_rule(rule, index) for index, rule in enumerate(raw)]


# -- resolving ----------------------------------------------------------------------------------


def matches(rule: Rule, payload: Any, event_type: str | None, budget: Budget | None = None) -> bool:
    """Whether ``rule`` applies; ``when`` is true as JMESPath says (``0`` is true)."""
    if rule.event_types and event_type not in rule.event_types:
        return False
    if rule.when is None:
        return True
    return is_truthy(rule.when.search(payload, budget))


def resolve(rules: list[Rule], payload: Any, event_type: str | None) -> list[Plan]:
    """The plans of the rules that match; RuleError (with the rule's name) on the first fault.

    Every expression of the rule set shares one budget: one payload's evaluation is bounded
    as a whole, whatever the number of rules.
    """
    plans = []
    budget = Budget()
    for rule in rules:
        try:
            if rule.for_each is not None:
                plans.extend(_each(rule, payload, event_type, budget))
            elif matches(rule, payload, event_type, budget):
                plans.append(_plan(rule, payload, budget))
        except RuleError as exc:
            exc.rule = rule.name
            exc.details = {"expression": exc.expression, "rule": rule.name}
            raise
    # A batch is applied in its own order (then in rule order), after the request's own rules.
    plans.sort(key=lambda plan: -1 if plan.item is None else plan.item)
    return plans


def _each(rule: Rule, payload: Any, event_type: str | None, budget: Budget) -> list[Plan]:
    """The plans of a ``for_each`` rule: one per item that its ``when`` accepts."""
    assert rule.for_each is not None
    if rule.event_types and event_type not in rule.event_types:
        return []
    items = rule.for_each.search(payload, budget)
    if items is None:
        return []
    if not isinstance(items, list) or len(items) > MAX_ITEMS:
        raise RuleError(
            f"{rule.for_each.where} must give a list of at most {MAX_ITEMS} items",
            expression=rule.for_each.source,
        )
    plans = []
    for index, item in enumerate(items):
        if rule.when is None or is_truthy(rule.when.search(item, budget)):
            plan = _plan(rule, item, budget)
            plan.item = index
            plans.append(plan)
    return plans


def _plan(rule: Rule, payload: Any, budget: Budget) -> Plan:
    plan = Plan(rule=rule.name, add_to_lists=rule.add_to_lists)
    if rule.email_event is not None:
        plan.email_event = {}
        for key, expr in rule.email_event.expressions.items():
            plan.email_event[key] = expr.search(payload, budget)
            plan.expressions[f"email_event.{key}"] = expr.source
    contact = rule.contact
    plan.contact_mapped = contact is not None
    if contact is not None:
        plan.mode = contact.mode
        if contact.email is not None:
            plan.email = contact.email.search(payload, budget)
            plan.expressions["email"] = contact.email.source
        if contact.ext_id is not None:
            plan.ext_id = contact.ext_id.search(payload, budget)
            plan.expressions["ext_id"] = contact.ext_id.source
        if plan.email is None and plan.ext_id is None:
            source = contact.email or contact.ext_id
            assert source is not None
            raise RuleError(
                f"{source.where} resolved to null: no contact to act on", expression=source.source
            )
        for source in contact.attributes_from:
            found = source.search(payload, budget)
            if found is None:
                continue
            if not isinstance(found, dict):
                raise RuleError(
                    f"{source.where} must give an object of attributes", expression=source.source
                )
            for key, value in found.items():
                name = str(key)
                if not ATTRIBUTE_NAME.match(name) or name.upper() in ("EMAIL", "EXT_ID"):
                    plan.skipped_attributes.append(name)
                elif value is not None and not isinstance(value, dict | list):
                    plan.attributes[name.upper()] = value
                    plan.expressions[name.upper()] = source.source
        for name, expr in contact.attributes.items():
            value = expr.search(payload, budget)
            if value is not None:  # a field missing from this payload changes nothing
                plan.attributes[name] = value
                plan.expressions[name] = expr.source
    if rule.event is not None:
        plan.event_name = rule.event.name
        plan.event_properties = {
            key: expr.search(payload, budget) for key, expr in rule.event.properties.items()
        }
        if rule.event.date is not None:
            plan.event_date = _moment(rule.event.date.search(payload, budget), rule.event.date)
    if rule.send_email is not None:
        resolve_send_email(rule.send_email, payload, budget, plan)
    plan.automation_id = rule.start_automation
    return plan


def _moment(value: Any, expr: Expression) -> datetime | None:
    """An event date from an ISO 8601 string or Unix seconds, in UTC; None when missing.

    Converted to UTC here, where a failure can still name the expression: a date at the edge of
    the calendar (``0001-01-01T00:00:00+01:00``) has no UTC form at all.
    """
    if value is None:
        return None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise RuleError(f"{expr.where} is not a date: {str(value)[:60]!r}", expression=expr.source)
