"""The baseline for the contacts API benchmark: a bare Starlette handler on uvicorn.

It does what an HTTP framework must do for ``POST /api/v1/contacts`` and nothing else: read and
parse the JSON body, take the email, answer 201 with a small JSON. No validation, no database.
Uvicorn runs with the settings ``hookhub serve`` uses (uvloop, httptools, no access log).

    python bench/baseline_app.py --port 8099
"""

from __future__ import annotations

import argparse
import itertools

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

_ids = itertools.count(1)


async def create_contact(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"id": next(_ids), "email": body["email"]}, status_code=201)


async def healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def build_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/api/v1/contacts", create_contact, methods=["POST"]),
            Route("/healthz", healthz),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args()
    uvicorn.run(
        build_app(),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
