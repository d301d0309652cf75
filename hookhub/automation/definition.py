"""An automation's definition: parsed and validated once when it is saved, compiled into a
:class:`Program` of steps that workers follow by step id.

``parse_definition`` refuses what cannot run (an unknown trigger or step kind, a bad expression,
duration, time zone or id, two steps with one id) with a 422 naming the place (``steps[2].else
[0].wait``). Whether templates and lists exist needs the database: :func:`referenced_ids` says
which, and the automations service checks them. Steps without an ``id`` get one made from their
kind and order (``send_email-2``), so an edit of the same shape keeps the same ids and the
enrollments on them keep their place.

The program is flat: every step knows the step after it (``next``: its following sibling, or,
for the last step of a branch, whatever follows the branching step) and a branching step the
first step of each branch. ``None`` as the next step means the automation is completed.
Pure: nothing here touches the database or a clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from hookhub.automation.timing import (
    parse_duration,
    parse_time_of_day,
    parse_timezone,
    parse_weekdays,
    path_error,
)
from hookhub.automation.trigger_spec import TRIGGER_TYPES as TRIGGER_TYPES
from hookhub.automation.trigger_spec import Trigger, parse_trigger, positive_id
from hookhub.core.contacts import check_event_name, normalize_attribute_name
from hookhub.errors import HookhubError
from hookhub.inbound.rule_expressions import Expression, compile_expression

REENTRY = ("never", "after_exit", "always")
STEP_KINDS = (
    "send_email",
    "wait",
    "wait_until",
    "if",
    "wait_for",
    "add_to_list",
    "remove_from_list",
    "update_contact",
    "track_event",
    "webhook",
    "exit",
)
BRANCHING = frozenset({"if", "wait_for"})
WAITING = frozenset({"wait", "wait_until", "wait_for"})
WEBHOOK_INCLUDES = ("attributes", "lists", "trigger")
MAX_STEPS = 200
MAX_DEPTH = 8
MAX_NAME = 255
_STEP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


def _object(
    value: Any, where: str, allowed: frozenset[str], required: tuple[str, ...] = ()
) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise path_error(where, "must be an object")
    extra = set(value) - allowed
    if extra:
        raise path_error(where, f"unknown keys {sorted(map(str, extra))}")
    for key in required:
        if value.get(key) is None:
            raise path_error(f"{where}.{key}", "is required")
    return value


# -- steps ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """One compiled step: its kind, its parsed settings, and where the run goes after it."""

    id: str
    kind: str
    spec: Any
    path: str
    next: str | None = None
    then_first: str | None = None
    else_first: str | None = None

    @property
    def waits(self) -> bool:
        return self.kind in WAITING


@dataclass(frozen=True, slots=True)
class SendEmailSpec:
    template_id: int
    params: dict[str, Expression]


@dataclass(frozen=True, slots=True)
class WaitUntilSpec:
    at: time
    zone: ZoneInfo
    days: frozenset[int]


@dataclass(frozen=True, slots=True)
class WaitForSpec:
    event_name: str
    timeout: float


@dataclass(frozen=True, slots=True)
class TrackEventSpec:
    name: str
    properties: dict[str, Expression]


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    url: str
    include: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Program:
    first: str | None
    steps: dict[str, Step]

    def after(self, step_id: str) -> str | None:
        return self.steps[step_id].next


@dataclass
class Definition:
    name: str
    trigger: Trigger
    filter: Expression | None
    reentry: str
    exit_on_unsubscribe: bool
    steps_json: list[dict[str, Any]]
    """The step tree as stored and answered: every step with its id."""
    program: Program
    template_ids: set[int] = field(default_factory=set)
    list_ids: set[int] = field(default_factory=set)


def _expressions(value: Any, where: str, *, upper: bool = False) -> dict[str, Expression]:
    if not isinstance(value, Mapping) or len(value) > 100:
        raise path_error(where, "must be an object of at most 100 expressions")
    out: dict[str, Expression] = {}
    for key, source in value.items():
        if not isinstance(key, str) or not key or len(key) > 255:
            raise path_error(where, f"{key!r} is not a valid name")
        name = key
        if upper:
            try:
                name = normalize_attribute_name(key)
            except HookhubError as exc:
                raise path_error(f"{where}.{key}", exc.message) from exc
        out[name] = compile_expression(source, f"{where}.{key}")
    return out


class _Compiler:
    def __init__(self) -> None:
        self.steps: dict[str, Step] = {}
        self.count = 0
        self.per_kind: dict[str, int] = {}
        self.template_ids: set[int] = set()
        self.list_ids: set[int] = set()
        self.given: set[str] = set()

    def collect_ids(self, steps: Any, where: str, depth: int) -> None:
        """First pass: the ids given, so that generated ones never take one of them."""
        if not isinstance(steps, list):
            raise path_error(where, "must be a list of steps")
        if depth > MAX_DEPTH:
            raise path_error(where, f"branches nest deeper than {MAX_DEPTH} levels")
        for index, raw in enumerate(steps):
            at = f"{where}[{index}]"
            if not isinstance(raw, Mapping):
                raise path_error(at, "must be an object with one step kind")
            given = raw.get("id")
            if given is not None:
                if not isinstance(given, str) or not _STEP_ID.match(given):
                    raise path_error(f"{at}.id", "must be 1-64 letters, digits, '_', '-' or '.'")
                if given in self.given:
                    raise path_error(f"{at}.id", f"{given!r} is the id of another step")
                self.given.add(given)
            for branch in ("then", "else"):
                if branch in raw:
                    self.collect_ids(raw[branch], f"{at}.{branch}", depth + 1)

    def sequence(
        self, steps: list[Any], where: str, after: str | None
    ) -> tuple[str | None, list[dict[str, Any]]]:
        """Compile a list of steps whose run continues at ``after``; answers its first id and
        the normalized JSON."""
        compiled: list[tuple[str, str, Any, str, Mapping[str, Any]]] = []
        normalized: list[dict[str, Any]] = []
        for index, raw in enumerate(steps):
            at = f"{where}[{index}]"
            kinds = [key for key in raw if key in STEP_KINDS]
            unknown = [
                key for key in raw if key not in STEP_KINDS and key not in ("id", "then", "else")
            ]
            if unknown:
                raise path_error(
                    at,
                    f"unknown step kind or key {sorted(map(str, unknown))} "
                    f"(kinds: {', '.join(STEP_KINDS)})",
                )
            if len(kinds) != 1:
                raise path_error(
                    at, f"must have exactly one step kind (one of {', '.join(STEP_KINDS)})"
                )
            kind = kinds[0]
            if kind not in BRANCHING and ("then" in raw or "else" in raw):
                raise path_error(at, f"{kind} has no then/else branches")
            self.count += 1
            if self.count > MAX_STEPS:
                raise path_error(where, f"an automation has at most {MAX_STEPS} steps")
            step_id = raw.get("id") or self._make_id(kind)
            spec = self._spec(kind, raw[kind], f"{at}.{kind}")
            compiled.append((step_id, kind, spec, at, raw))
            entry: dict[str, Any] = {"id": step_id, kind: raw[kind]}
            normalized.append(entry)
        following: str | None = after
        for position in range(len(compiled) - 1, -1, -1):
            step_id, kind, spec, at, raw = compiled[position]
            then_first = else_first = None
            if kind in BRANCHING:
                then_first, then_json = self.sequence(
                    raw.get("then") or [], f"{at}.then", following
                )
                else_first, else_json = self.sequence(
                    raw.get("else") or [], f"{at}.else", following
                )
                normalized[position]["then"] = then_json
                normalized[position]["else"] = else_json
            self.steps[step_id] = Step(step_id, kind, spec, at, following, then_first, else_first)
            following = step_id
        return following, normalized

    def _make_id(self, kind: str) -> str:
        while True:
            self.per_kind[kind] = self.per_kind.get(kind, 0) + 1
            candidate = f"{kind}-{self.per_kind[kind]}"
            if candidate not in self.given:
                self.given.add(candidate)
                return candidate

    def _spec(self, kind: str, value: Any, where: str) -> Any:
        if kind == "send_email":
            spec = _object(value, where, frozenset({"template_id", "params"}), ("template_id",))
            template_id = positive_id(spec["template_id"], f"{where}.template_id")
            self.template_ids.add(template_id)
            return SendEmailSpec(
                template_id, _expressions(spec.get("params") or {}, f"{where}.params")
            )
        if kind == "wait":
            return parse_duration(value, where)
        if kind == "wait_until":
            spec = _object(value, where, frozenset({"time", "timezone", "days"}), ("time",))
            return WaitUntilSpec(
                parse_time_of_day(spec["time"], f"{where}.time"),
                parse_timezone(spec.get("timezone", "UTC"), f"{where}.timezone"),
                parse_weekdays(spec.get("days"), f"{where}.days"),
            )
        if kind == "if":
            return compile_expression(value, where)
        if kind == "wait_for":
            spec = _object(
                value, where, frozenset({"event_name", "timeout"}), ("event_name", "timeout")
            )
            try:
                name = check_event_name(spec["event_name"])
            except HookhubError as exc:
                raise path_error(f"{where}.event_name", exc.message) from exc
            return WaitForSpec(name, parse_duration(spec["timeout"], f"{where}.timeout"))
        if kind in ("add_to_list", "remove_from_list"):
            if isinstance(value, Mapping):
                value = _object(value, where, frozenset({"list_id"}), ("list_id",))["list_id"]
            list_id = positive_id(value, where)
            self.list_ids.add(list_id)
            return list_id
        if kind == "update_contact":
            spec = _object(value, where, frozenset({"attributes"}), ("attributes",))
            if not spec["attributes"]:
                raise path_error(f"{where}.attributes", "must name at least one attribute")
            return _expressions(spec["attributes"], f"{where}.attributes", upper=True)
        if kind == "track_event":
            spec = _object(value, where, frozenset({"name", "properties"}), ("name",))
            try:
                name = check_event_name(spec["name"])
            except HookhubError as exc:
                raise path_error(f"{where}.name", exc.message) from exc
            return TrackEventSpec(
                name, _expressions(spec.get("properties") or {}, f"{where}.properties")
            )
        if kind == "webhook":
            spec = _object(value, where, frozenset({"url", "include"}), ("url",))
            url = spec["url"]
            parts = urlsplit(url) if isinstance(url, str) else None
            if (
                parts is None
                or parts.scheme not in ("http", "https")
                or not parts.hostname
                or len(url) > 2048
            ):
                raise path_error(f"{where}.url", "must be an http(s) URL")
            include = spec.get("include") or []
            if not isinstance(include, list) or any(i not in WEBHOOK_INCLUDES for i in include):
                raise path_error(
                    f"{where}.include", f"must list some of {', '.join(WEBHOOK_INCLUDES)}"
                )
            return WebhookSpec(url, tuple(dict.fromkeys(include)))
        if kind == "exit":
            if value not in (True, None, {}):
                raise path_error(where, "takes no settings (use true)")
            return None
        raise AssertionError(kind)  # pragma: no cover


def compile_steps(
    steps: Any, where: str = "steps"
) -> tuple[Program, list[dict[str, Any]], set[int], set[int]]:
    """The program, the normalized step tree, and the template and list ids it refers to."""
    if not isinstance(steps, list) or not steps:
        raise path_error(where, "must be a non-empty list of steps")
    compiler = _Compiler()
    compiler.collect_ids(steps, where, 0)
    first, normalized = compiler.sequence(steps, where, None)
    return Program(first, compiler.steps), normalized, compiler.template_ids, compiler.list_ids


def parse_definition(body: Mapping[str, Any]) -> Definition:
    """A whole automation (``POST /automations``'s body, or a stored row's values)."""
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise path_error("name", f"must be a non-empty string of at most {MAX_NAME} characters")
    trigger = parse_trigger(body.get("trigger"))
    raw_filter = body.get("filter")
    flt = None if raw_filter is None else compile_expression(raw_filter, "filter")
    # A yearly date (a birthday) comes back every year: by default each occurrence enrols
    # (once: its entry key), where `never` would make it fire only the first year.
    yearly = trigger.type == "date" and trigger.yearly
    reentry = body.get("reentry") or ("after_exit" if yearly else "never")
    if reentry not in REENTRY:
        raise path_error("reentry", f"must be one of {', '.join(REENTRY)}")
    exit_on_unsubscribe = body.get("exit_on_unsubscribe", True)
    if not isinstance(exit_on_unsubscribe, bool):
        raise path_error("exit_on_unsubscribe", "must be true or false")
    program, normalized, templates, lists = compile_steps(body.get("steps"))
    if trigger.list_id is not None:
        lists = {*lists, trigger.list_id}
    return Definition(
        name=name.strip(),
        trigger=trigger,
        filter=flt,
        reentry=reentry,
        exit_on_unsubscribe=exit_on_unsubscribe,
        steps_json=normalized,
        program=program,
        template_ids=templates,
        list_ids=lists,
    )
