"""``GET /v1.0/me``: the signed-in user's own object (any user token with ``directory.access``).

An app token has no "me": 403 (``app_token_not_allowed``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.admin.caller import authenticate
from gateway.admin.errors import ApiError, api_endpoint
from gateway.admin.graph import graph_user
from gateway.http import json_response
from gateway.runtime import Runtime


@api_endpoint
async def me(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    caller = await authenticate(rt, request)
    if caller.user is None:
        raise ApiError(
            403, "app_token_not_allowed", "/me needs a signed-in user's token; an app token has no user."
        )
    return json_response(graph_user(caller.user))
