"""The overview page (``/``): what Hookhub holds, and deliveries, inbound requests and emails
over the last hour, day or week (success rate, latency p50/p95, SVG charts), refreshed in place.

The activity figures come from ``web.stats.ActivityCache`` (fast on a large database: a page
never waits for a refresh it does not need); counts are read on every request.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from hookhub.errors import Unavailable
from hookhub.services import Services
from hookhub.store.dashboard_stats import counts
from hookhub.web.charts import bar_chart
from hookhub.web.render import render
from hookhub.web.stats import WINDOWS, Activity, ActivityCache, Window

router = APIRouter()

KIND_LABELS = {
    "deliveries": ("Outbound deliveries", "Delivery attempts"),
    "inbound": ("Inbound requests", "Inbound requests"),
    "emails": ("Emails", "Emails"),
}
LATENCY_NOTE = {
    "deliveries": "attempt duration",
    "inbound": "time to process",
    "emails": "queued to sent",
}


def _cache(request: Request) -> ActivityCache:
    cache: ActivityCache | None = getattr(request.app.state, "activity_cache", None)
    if cache is None:
        services: Services = request.app.state.services
        cache = ActivityCache(services.db)
        request.app.state.activity_cache = cache
    return cache


def _window(request: Request) -> Window:
    return WINDOWS.get(request.query_params.get("window", "day"), WINDOWS["day"])


def _counts(services: Services) -> dict[str, int]:
    with services.db.read() as conn:
        return counts(conn)


def _label(start: float, window: Window) -> str:
    moment = datetime.fromtimestamp(start, UTC)
    if window.name == "week":
        return moment.strftime("%a %Hh")
    return moment.strftime("%H:%M")


def _activity_context(found: Activity | None, window: Window) -> dict[str, Any]:
    if found is None:
        return {"window": window, "activity": None, "windows": WINDOWS.values()}
    kinds = []
    for kind, series in found.series.items():
        labels = [_label(p.start, window) for p in series.points]
        kinds.append(
            {
                "kind": kind,
                "title": KIND_LABELS[kind][0],
                "unit": KIND_LABELS[kind][1],
                "latency_note": LATENCY_NOTE[kind],
                "series": series,
                "chart": bar_chart(series, labels),
                "labels": labels,
            }
        )
    return {
        "window": window,
        "windows": WINDOWS.values(),
        "activity": found,
        "kinds": kinds,
        "age": max(0, int(time.time() - found.computed_at)),
    }


@router.get("/")
async def overview(request: Request) -> Response:
    services: Services = request.app.state.services
    window = _window(request)
    context = _activity_context(_cache(request).peek(window), window)
    context["counts"] = await run_in_threadpool(_counts, services)
    context["active"] = "overview"
    return render(request, "overview.html", context)


@router.get("/overview/counts")
async def overview_counts(request: Request) -> Response:
    services: Services = request.app.state.services
    found = await run_in_threadpool(_counts, services)
    return render(request, "_overview_counts.html", {"counts": found})


@router.get("/overview/activity")
async def overview_activity(request: Request) -> Response:
    window = _window(request)
    try:
        found = await _cache(request).get(window)
    except (Unavailable, OperationalError):
        # A live part of the page: say so and try again later, rather than an error htmx
        # would not show (the placeholder would say "Counting..." for ever).
        context = _activity_context(None, window)
        context["unavailable"] = True
        return render(request, "_overview_activity.html", context)
    return render(request, "_overview_activity.html", _activity_context(found, window))
