"""The overview page (``/``): what Hookhub holds, refreshed in place every few seconds."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from hookhub.services import Services
from hookhub.store.dashboard_stats import counts
from hookhub.web.render import render

router = APIRouter()


def _counts(services: Services) -> dict[str, int]:
    with services.db.read() as conn:
        return counts(conn)


async def _context(request: Request) -> dict[str, Any]:
    services: Services = request.app.state.services
    return {"counts": await run_in_threadpool(_counts, services), "active": "overview"}


@router.get("/")
async def overview(request: Request) -> Response:
    return render(request, "overview.html", await _context(request))


@router.get("/overview/counts")
async def overview_counts(request: Request) -> Response:
    return render(request, "_overview_counts.html", await _context(request))
