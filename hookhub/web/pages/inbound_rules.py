"""The rule editor of an inbound webhook: its rules as JSON, a live preview against a logged
request, and saving.

The preview posts the draft (htmx, as the text changes) to the same service call as the API's
``POST /inbound-webhooks/{id}/preview``, with the draft instead of the saved rules: nothing is
written, and what each matched rule would do, or the error, is shown. What this module must
never do: save from the preview, or check a rule itself (the service compiles the draft the
way a save does).

The page itself runs no preview: a preview's dry run is a write transaction, which waits for the
process's other writers, so htmx loads it just after the page (and again as the draft changes).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hookhub.api.schemas import MAX_ID
from hookhub.core.pagination import encode_cursor
from hookhub.errors import HookhubError, NotFound, ValidationFailed
from hookhub.web.auth import require_admin
from hookhub.web.pages.inbound import webhook_id_in_range
from hookhub.web.pages.inbound_common import (
    FormErrors,
    call,
    parse_json,
    pretty_json,
    read_form,
    services_of,
    show_time,
    text_field,
)
from hookhub.web.render import render

router = APIRouter(include_in_schema=False)

CHOICES = 50
"""How many of the newest logged requests the editor offers to preview against."""


def _request_id(text: str | None) -> int | None:
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if 1 <= value <= MAX_ID else None


async def _editor(
    request: Request,
    webhook_id: int,
    *,
    rules_text: str | None = None,
    request_id: int | None = None,
    errors: FormErrors | None = None,
    status: int = 200,
) -> Response:
    services = services_of(request)
    webhook = await call(services.inbound.get, webhook_id_in_range(webhook_id))
    choices = await call(
        services.inbound.requests, webhook_id, status=None, before_id=None, limit=CHOICES
    )
    choices = [c for c in choices if c["status"] != "rejected" and c["body_size"]]
    for choice in choices:
        choice["received"] = show_time(choice["received_at"])
    if request_id is None and choices:
        # The newest failure is what one usually comes to fix.
        failed = [c for c in choices if c["status"] == "failed"]
        request_id = (failed or choices)[0]["id"]
    context = {
        "webhook": webhook,
        "rules_text": pretty_json(webhook.rules) if rules_text is None else rules_text,
        "choices": choices,
        "request_id": request_id,
        "errors": errors or FormErrors(),
        "saved": request.query_params.get("saved") == "1",
        "active": "inbound",
        "more_cursor": encode_cursor(choices[-1]["id"]) if len(choices) == CHOICES else None,
    }
    return render(request, "inbound_rules.html", context, status=status)


@router.get("/inbound/{webhook_id:int}/rules")
async def rules_editor(request: Request, webhook_id: int) -> Response:
    request_id = _request_id(request.query_params.get("request_id"))
    return await _editor(request, webhook_id, request_id=request_id)


async def _preview(
    request: Request, webhook_id: int, rules: Any, request_id: int
) -> dict[str, Any]:
    """The preview's context: the outcome, or the error that stopped it."""
    services = services_of(request)
    try:
        logged = await call(services.inbound.request, webhook_id, request_id)
    except NotFound as exc:
        return {"problem": exc.message}
    body = (logged["body"] or "").encode()
    headers = dict(logged["headers"])
    try:
        outcome = await call(services.inbound.preview, webhook_id, body, headers, rules=rules)
    except HookhubError as exc:  # a draft that does not compile, an expression too costly
        details = exc.details or {}
        where = details.get("path") or details.get("expression")
        return {"problem": exc.message, "where": where}
    return {
        "request": logged,
        "outcome": outcome,
        "matched": [pretty_json(plan) for plan in outcome.get("matched") or []],
        "actions": pretty_json(outcome.get("actions") or []),
        "messages": [m["type"] for m in outcome.get("messages") or []],
    }


@router.post("/inbound/{webhook_id:int}/rules/preview")
async def rules_preview(request: Request, webhook_id: int) -> Response:
    """The draft's preview against the chosen request (a partial htmx swaps in).

    Answers 200 with the problem shown when the draft is not valid JSON or not valid rules:
    the editor is mid-edit, which is not an error of the page.
    """
    form = await read_form(request)
    webhook_id_in_range(webhook_id)
    errors = FormErrors()
    rules = parse_json(text_field(form, "rules"), "rules", errors, default=[])
    request_id = _request_id(text_field(form, "request_id"))
    if errors:
        preview: dict[str, Any] = {"problem": errors["rules"]}
    elif not isinstance(rules, list):
        preview = {"problem": "The rules are a JSON list: [ {...}, {...} ]."}
    elif request_id is None:
        preview = {"problem": "Choose a logged request to preview against."}
    else:
        await call(services_of(request).inbound.get, webhook_id)
        preview = await _preview(request, webhook_id, rules, request_id)
    return render(request, "_inbound_preview.html", {"preview": preview})


@router.post("/inbound/{webhook_id:int}/rules")
async def rules_save(request: Request, webhook_id: int) -> Response:
    require_admin(request)
    form = await read_form(request)
    webhook_id_in_range(webhook_id)
    text = text_field(form, "rules")
    request_id = _request_id(text_field(form, "request_id"))
    errors = FormErrors()
    rules = parse_json(text, "rules", errors, default=None)
    if not errors and not isinstance(rules, list):
        errors.add("rules", "The rules are a JSON list: [ {...}, {...} ] ([] for none).")
    if not errors:
        try:
            await call(services_of(request).inbound.update, webhook_id, {"rules": rules})
        except ValidationFailed as exc:
            errors.add("rules", exc.message)
    if errors:
        return await _editor(
            request, webhook_id, rules_text=text, request_id=request_id, errors=errors, status=422
        )
    target = f"/inbound/{webhook_id}/rules?saved=1"
    if request_id is not None:
        target += f"&request_id={request_id}"
    return RedirectResponse(target, status_code=303)
