"""Token revocation (RFC 7009) and introspection (RFC 7662).

Revoking a refresh token revokes its whole grant (access tokens included, RFC 7009 2.1);
revoking an access token removes that token. A token of another client, or an unknown one,
is answered 200 with no effect (RFC 7009 2.2), so the endpoint is no token oracle.
Introspection is for confidential clients and only reports their own live tokens as active
(a rotated refresh token is not). Revoking a family goes through ``grants.revoke``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.http import NO_STORE, BadForm, json_response, read_form, single_values
from gateway.oidc import bearer, grants
from gateway.oidc.client_auth import authenticate_client
from gateway.oidc.errors import InvalidClient, InvalidRequest, OAuthError
from gateway.runtime import Runtime
from gateway.settings.models import Application


async def _authenticated(request: Request) -> tuple[Runtime, Application, dict[str, str]]:
    rt: Runtime = request.app.state.runtime
    try:
        form = await read_form(request)
    except BadForm as exc:
        raise InvalidRequest(str(exc)) from exc
    params, repeated = single_values(form.multi_items())
    if repeated:
        raise InvalidRequest(f"the {repeated} parameter is repeated")
    app = await authenticate_client(rt, request, params)
    if not params.get("token"):
        raise InvalidRequest("token is required")
    return rt, app, params


def _error(exc: OAuthError) -> Response:
    headers = {"WWW-Authenticate": 'Basic realm="token"'} if isinstance(exc, InvalidClient) else None
    return json_response(exc.body(), exc.status, headers)


async def revoke(request: Request) -> Response:
    try:
        rt, app, params = await _authenticated(request)
    except OAuthError as exc:
        return _error(exc)
    assert app.oidc is not None
    token = params["token"]
    access = await bearer.find_access(rt.store, token)
    if access is not None and access["client_id"] == app.oidc.client_id:
        await bearer.delete_access(rt.store, token)
    refresh = await bearer.find_refresh(rt.store, token)
    if refresh is not None and refresh["client_id"] == app.oidc.client_id:
        await grants.revoke(rt.store, refresh["grant_id"])
    return Response(status_code=200, headers=NO_STORE)


async def introspect(request: Request) -> Response:
    try:
        rt, app, params = await _authenticated(request)
        assert app.oidc is not None
        if app.oidc.is_public:
            raise InvalidClient("introspection requires a confidential client")
    except OAuthError as exc:
        return _error(exc)
    token = params["token"]
    now = rt.now()
    body: dict[str, Any] = {"active": False}
    access = await bearer.find_access(rt.store, token)
    refresh = None if access is not None else await bearer.find_refresh(rt.store, token)
    record, token_type = (access, "Bearer") if access is not None else (refresh, "refresh_token")
    live = record is not None and (access is not None or bearer.is_live_refresh(record, now))
    if live and record is not None and record["client_id"] == app.oidc.client_id and record["exp"] > now:
        body = {
            "active": True,
            "scope": " ".join(record["scopes"]),
            "client_id": record["client_id"],
            "token_type": token_type,
            "exp": record["exp"],
            "iat": record["iat"],
            "iss": rt.settings.issuer,
            "aud": record["client_id"],
        }
        if "sub" in record:
            body["sub"] = record["sub"]
    return json_response(body)
