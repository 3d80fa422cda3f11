"""Binding a cross-site POST answer to the browser that started the sign-in: the same-origin re-POST.

SAML's ACS and WS-Federation's wreply receive the upstream's answer as a form POSTed from the
IdP's site. The browser does not send ``SameSite=Lax`` cookies on such a cross-site POST, so the
browser binding cookie is missing exactly when it matters. Rather than weaken the cookie
(``SameSite=None``), the callback answers a cookie-less POST with a page that POSTs the same
fields back to the same URL from our own origin (a script submits it; a button does when
scripts are off). That second POST is same-site, so it carries the cookie, and the sign-in's
usual checks (state consumed once, browser binding) run on it. A POST already re-posted is never
re-posted again: without the cookie it fails the binding check like any foreign browser.
Nothing is stored or consumed before the re-POST.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.http import origin, page_headers
from gateway.pages import render
from gateway.runtime import Runtime
from gateway.signin import transaction

UPSTREAM_STATE = "upstream-state"
"""The artefact kind of the upstream ``state`` (``gateway.signin.federation``)."""

MARK = "_gw_repost"
"""The field that marks the second POST."""

CALLBACK_FORM_BYTES = 384 * 1024
"""Callback bodies may be large: a 256 KiB SAML response or wresult is ~342 KiB in base64."""


def needs_repost(rt: Runtime, request: Request, params: dict[str, str]) -> bool:
    return request.method == "POST" and MARK not in params and rt.browser.browser_id(request) is None


def without_mark(params: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in params.items() if name != MARK}


async def repost_page(rt: Runtime, request: Request, params: dict[str, str], state: str | None) -> Response:
    """The page; its ``form-action`` also allows the app's origin, because the re-POST ends in a
    redirect to the app and Chromium applies ``form-action`` to that redirect too. The sign-in is
    only read (never consumed) to find it."""
    headers = page_headers(await _app_origin(rt, state))
    # This page alone runs a script: our own static file, which submits the form (no inline code).
    headers["Content-Security-Policy"] = headers["Content-Security-Policy"].replace(
        "default-src 'none';", "default-src 'none'; script-src 'self';"
    )
    fields = [(name, value) for name, value in params.items()] + [(MARK, "1")]
    return render(
        request, "signin_repost.html", {"action": request.url.path, "fields": fields}, headers=headers
    )


async def _app_origin(rt: Runtime, state: str | None) -> str:
    if not state or len(state) > 128:
        return ""
    found = await rt.store.get(UPSTREAM_STATE, state)
    signin = await transaction.load(rt.store, str(found.get("signin_id", ""))) if found else None
    if signin is None or not signin.redirect_uri:
        return ""
    return origin(signin.redirect_uri)
