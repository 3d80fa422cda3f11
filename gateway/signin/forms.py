"""Reading a sign-in page's POSTed form: bounded, urlencoded, and carrying this sign-in's CSRF token."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.http import BadForm, read_form
from gateway.pages import error_page
from gateway.runtime import Runtime

FORM_EXPIRED = "This form is no longer valid. Go back and try again."


async def checked_form(rt: Runtime, request: Request, signin_id: str) -> dict[str, str] | Response:
    """The form's fields, or the error page to answer (400 bad body, 403 missing or foreign CSRF token)."""
    try:
        form = await read_form(request)
    except BadForm as exc:
        return error_page(request, "Invalid request", str(exc), status=400)
    csrf = form.get("csrf")
    if not rt.browser.check_csrf(signin_id, request, csrf if isinstance(csrf, str) else None):
        return error_page(request, "Form expired", FORM_EXPIRED, status=403)
    return {k: v for k, v in form.items() if isinstance(v, str)}
