"""Automation pages: the list with enabled state and enrollment counts; an automation's page
with its step tree (nested branches) and per-step counts, enable/disable, the definition's JSON
editor, and a contact's path through it (``?contact=`` an id or email).

Changes go through :class:`AutomationService` (the API's PATCH and POST) after
``require_admin``. A definition the service refuses names the place (``steps[1].then[0].wait``):
the page shows the message next to the editor and on that step of the tree drawn from the
draft.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from hookhub.core.pagination import decode_cursor, encode_cursor
from hookhub.errors import HookhubError, NotFound, ValidationFailed
from hookhub.records.automations import Automation
from hookhub.services import Services
from hookhub.store.dashboard_people import enrollment_counts, step_path
from hookhub.web.auth import require_admin
from hookhub.web.people_common import (
    blocking,
    check_id,
    compact_json,
    pretty_json,
    query_text,
    read_form,
    redirect,
    text,
    when,
)
from hookhub.web.render import render

router = APIRouter(include_in_schema=False)
PAGE = 50
READ_ONLY = ("id", "version", "created_at", "updated_at", "counts")
"""Keys of the API's answer that a pasted definition may carry and that are not edited."""
EXAMPLE: dict[str, Any] = {
    "name": "Welcome",
    "trigger": {"type": "contact.created"},
    "reentry": "never",
    "exit_on_unsubscribe": True,
    "steps": [
        {"id": "wait-1", "wait": "1d"},
        {"id": "tag", "update_contact": {"attributes": {"ONBOARDED": "`true`"}}},
    ],
}


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@router.get("/automations")
async def automations_index(request: Request) -> Response:
    services = _services(request)
    cursor = request.query_params.get("cursor")

    def load() -> tuple[list[Automation], dict[int, dict[str, int]]]:
        items = services.automations.page(after_id=decode_cursor(cursor), limit=PAGE)
        with services.db.read() as conn:
            counts = enrollment_counts(conn, [a.id for a in items])
        return items, counts

    items, counts = await blocking(load)
    return render(
        request,
        "automations_list.html",
        {
            "active": "automations",
            "rows": [
                {
                    "automation": a,
                    "trigger": a.trigger.get("type"),
                    "counts": counts.get(a.id, {}),
                    "entered": sum(counts.get(a.id, {}).values()),
                    "updated": when(a.updated_at),
                }
                for a in items
            ],
            "next_cursor": encode_cursor(items[-1].id) if len(items) == PAGE else None,
        },
    )


def step_tree(
    steps: Any,
    where: str = "steps",
    counts: dict[str, Any] | None = None,
    visited: set[str] | None = None,
) -> list[dict[str, Any]]:
    """The step tree as nested nodes, each with its place in the definition (``path``)."""
    nodes: list[dict[str, Any]] = []
    if not isinstance(steps, list):
        return nodes
    for index, raw in enumerate(steps):
        at = f"{where}[{index}]"
        if not isinstance(raw, dict):
            nodes.append({"path": at, "id": None, "kind": "?", "config": compact_json(raw)})
            continue
        kinds = [k for k in raw if k not in ("id", "then", "else")]
        kind = kinds[0] if kinds else "?"
        step_id = raw.get("id") if isinstance(raw.get("id"), str) else None
        node: dict[str, Any] = {
            "path": at,
            "id": step_id,
            "kind": kind,
            "config": compact_json(raw.get(kind), 200),
            "counts": (counts or {}).get(step_id) if step_id else None,
            "visited": step_id in (visited or set()),
            "branches": [],
            "error": None,
        }
        for branch in ("then", "else"):
            if branch in raw:
                node["branches"].append(
                    (branch, step_tree(raw[branch], f"{at}.{branch}", counts, visited))
                )
        nodes.append(node)
    return nodes


def place_error(nodes: list[dict[str, Any]], path: str, message: str) -> bool:
    """Put ``message`` on the deepest step whose place ``path`` is in; False if none is."""
    for node in nodes:
        if path == node["path"] or path.startswith(node["path"] + "."):
            for _branch, children in node.get("branches", []):
                if place_error(children, path, message):
                    return True
            node["error"] = message
            return True
    return False


def _contact_path(
    services: Services, automation_id: int, ref: str
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], str | None]:
    try:
        with services.crm.reader() as crm:
            contact = crm.find_contact(ref)
            runs = step_path(crm.conn, automation_id, contact.id)
    except NotFound:
        return None, [], f"No contact {ref!r}."
    for run in runs:
        run["entered"] = when(run["entered_at"])
        run["finished"] = when(run["finished_at"])
        for step in run["steps"]:
            step["when"] = when(step["at"])
            step["detail_text"] = compact_json(step["detail"]) if step["detail"] else ""
    return {"id": contact.id, "email": contact.email}, runs, None


async def _detail_page(
    request: Request,
    automation_id: int,
    *,
    draft: str | None = None,
    error: HookhubError | None = None,
    status: int = 200,
    notice: str | None = None,
) -> Response:
    check_id(automation_id)
    services = _services(request)
    ref = query_text(request, "contact")

    def load() -> dict[str, Any]:
        shown = services.automations.get(automation_id)
        contact, runs, problem = (
            _contact_path(services, automation_id, ref) if ref else (None, [], None)
        )
        return {"shown": shown, "contact": contact, "runs": runs, "contact_error": problem}

    context = await blocking(load)
    automation = context["shown"]
    visited: set[str] = set()
    if context["runs"]:
        newest = context["runs"][0]
        visited = {s["step_id"] for s in newest["steps"]}
        if newest["step_id"]:
            visited.add(newest["step_id"])
    counts = (automation.get("counts") or {}).get("steps") or {}
    body = {k: v for k, v in automation.items() if k not in (*READ_ONLY, "enabled")}
    tree_source = automation["steps"]
    error_message, error_path = None, None
    if error is not None:
        error_message = error.message
        details = error.details if isinstance(error.details, dict) else {}
        error_path = details.get("path") if isinstance(details.get("path"), str) else None
        try:
            parsed = json.loads(draft or "")
            if isinstance(parsed, dict) and isinstance(parsed.get("steps"), list):
                tree_source = parsed["steps"]
        except ValueError:
            pass
    tree = step_tree(tree_source, counts=counts, visited=visited)
    if error_message and error_path:
        place_error(tree, error_path, error_message)
    context.update(
        active="automations",
        automation=automation,
        tree=tree,
        totals=automation.get("counts") or {},
        definition=draft if draft is not None else pretty_json(body),
        error_message=error_message,
        error_path=error_path,
        contact_ref=ref,
        notice=notice,
        updated=when_iso(automation.get("updated_at")),
    )
    return render(request, "automations_detail.html", context, status=status)


def when_iso(value: str | None) -> dict[str, str] | None:
    if not value:
        return None
    return {"iso": value, "text": value.replace("T", " ").replace("Z", " UTC")}


@router.get("/automations/{automation_id:int}")
async def automation_detail(request: Request, automation_id: int) -> Response:
    notice = "Saved." if request.query_params.get("saved") else None
    return await _detail_page(request, automation_id, notice=notice)


def _definition(raw: str) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        raise ValidationFailed(
            f"The definition is not valid JSON (line {line}): {exc}",
            details={"path": "body"},
        ) from exc
    if not isinstance(body, dict):
        raise ValidationFailed(
            "The definition is a JSON object (name, trigger, steps, ...).",
            details={"path": "body"},
        )
    return {k: v for k, v in body.items() if k not in READ_ONLY}


@router.post("/automations/{automation_id:int}/definition")
async def automation_save(request: Request, automation_id: int) -> Response:
    require_admin(request)
    check_id(automation_id)
    services = _services(request)
    form = await read_form(request)
    draft = form.get("definition") or ""
    draft = draft if isinstance(draft, str) else draft[0]

    def save() -> None:
        services.automations.update(automation_id, _definition(draft))

    try:
        await blocking(save)
    except HookhubError as exc:
        if exc.status not in (409, 422):
            raise
        return await _detail_page(request, automation_id, draft=draft, error=exc, status=exc.status)
    return redirect(f"/automations/{automation_id}?saved=1")


@router.post("/automations/{automation_id:int}/{state}")
async def automation_toggle(request: Request, automation_id: int, state: str) -> Response:
    """enable, disable or delete (confirmed)."""
    require_admin(request)
    check_id(automation_id)
    if state not in ("enable", "disable", "delete"):
        raise NotFound("No such page.", details={"action": state})
    services = _services(request)
    form = await read_form(request)
    if state == "delete":
        if text(form, "confirm") != "yes":
            error = ValidationFailed(
                "Tick the box to confirm: this cannot be undone.", details={"path": "delete"}
            )
            return await _detail_page(request, automation_id, error=error, status=422)
        await blocking(services.automations.delete, automation_id)
        return redirect("/automations")
    await blocking(services.automations.set_enabled, automation_id, state == "enable")
    return redirect(f"/automations/{automation_id}")


@router.get("/automations/new")
async def automation_new(request: Request) -> Response:
    return _new_page(request, pretty_json(EXAMPLE))


def _new_page(
    request: Request, draft: str, error: HookhubError | None = None, status: int = 200
) -> Response:
    tree_source: Any = []
    try:
        parsed = json.loads(draft)
        if isinstance(parsed, dict):
            tree_source = parsed.get("steps")
    except ValueError:
        pass
    tree = step_tree(tree_source)
    details = error.details if error is not None and isinstance(error.details, dict) else {}
    path = details.get("path") if isinstance(details.get("path"), str) else None
    if error is not None and path:
        place_error(tree, path, error.message)
    return render(
        request,
        "automations_new.html",
        {
            "active": "automations",
            "definition": draft,
            "tree": tree,
            "error_message": error.message if error is not None else None,
            "error_path": path,
        },
        status=status,
    )


@router.post("/automations")
async def automation_create(request: Request) -> Response:
    require_admin(request)
    services = _services(request)
    form = await read_form(request)
    draft = form.get("definition") or ""
    draft = draft if isinstance(draft, str) else draft[0]

    def create() -> dict[str, Any]:
        return services.automations.create(_definition(draft))

    try:
        created = await blocking(create)
    except HookhubError as exc:
        if exc.status not in (409, 422):
            raise
        return _new_page(request, draft, exc, exc.status)
    return redirect(f"/automations/{created['id']}")
