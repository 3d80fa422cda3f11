"""Reading a sign-in page's POSTed form: bounded, urlencoded, and carrying this sign-in's CSRF token."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response

from gateway.http import BadForm, read_form
from gateway.i18n import Message
from gateway.pages import error_page
from gateway.runtime import Runtime

FORM_EXPIRED = Message("error.form_expired.detail")


async def checked_form(
    rt: Runtime, request: Request, signin_id: str, ui_locales: Sequence[str] = ()
) -> dict[str, str] | Response:
    """The form's fields, or the error page to answer (400 bad body, 403 missing or foreign CSRF token)."""
    try:
        form = await read_form(request)
    except BadForm as exc:
        return error_page(
            request, Message("error.invalid_request"), str(exc), status=400, ui_locales=ui_locales
        )
    csrf = form.get("csrf")
    if not rt.browser.check_csrf(signin_id, request, csrf if isinstance(csrf, str) else None):
        return error_page(
            request, Message("error.form_expired.title"), FORM_EXPIRED, status=403, ui_locales=ui_locales
        )
    return {k: v for k, v in form.items() if isinstance(v, str)}
