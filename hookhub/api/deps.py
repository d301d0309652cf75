"""FastAPI dependencies: the app's services and the API-key (and scope) check."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from hookhub.api.scopes import scope_of
from hookhub.core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from hookhub.keys import require
from hookhub.outbound.outbox import request_origin
from hookhub.services import Services


async def get_services(request: Request) -> Services:
    """Async so that FastAPI calls it on the event loop, not through a worker thread."""
    services: Services = request.app.state.services
    return services


async def require_api_key(request: Request) -> None:
    """A valid key whose scope allows the route (403 otherwise).

    Async, so that a cached key costs no thread hop; a cache miss reads in a thread.
    The key becomes the origin of every outbox message the request causes (``request_origin``:
    the route runs in this task's context, or in a thread given a copy of it).
    """
    keys = (await get_services(request)).keys
    header = request.headers.get("authorization")
    found = keys.check_key_cached(header)
    if found is None:
        found = await run_in_threadpool(keys.check_key, header)
    scope, origin = found
    require(scope, scope_of(request.scope.get("route")))
    request_origin.set(origin)


ServicesDep = Annotated[Services, Depends(get_services)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")]
Cursor = Annotated[str | None, Query(max_length=200, description="next_cursor of the last page.")]
DEFAULT_PAGE = DEFAULT_LIMIT
