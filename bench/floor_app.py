"""The floor of the benchmark: a bare Starlette app with one small JSON endpoint.

Served as ``gateway serve`` serves the gateway (uvicorn on uvloop, the protocol of
``gateway.http_protocol``, no access log), it shows what the framework and server cost alone; every
gateway figure is printed as a ratio to it.
Run: ``python bench/floor_app.py --port P [--workers N]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def floor(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/", floor, methods=["GET"])])


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the floor app as gateway serve serves the gateway.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    from gateway.http_protocol import HeldWriteHttpToolsProtocol

    uvicorn.run(
        "floor_app:app", app_dir=str(Path(__file__).parent), host=args.host, port=args.port,
        workers=args.workers, loop="uvloop", http=HeldWriteHttpToolsProtocol, access_log=False,
    )  # fmt: skip


if __name__ == "__main__":
    main()
