"""The floor of the benchmark: a bare Starlette app with one small JSON endpoint.

Served by the same uvicorn (httptools + uvloop, no access log) as the gateway, it shows what
the framework and server cost alone; every gateway figure is printed as a ratio to it.
Run: ``uvicorn --app-dir bench floor_app:app --loop uvloop --http httptools --no-access-log``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def floor(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/", floor, methods=["GET"])])
