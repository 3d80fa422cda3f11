"""HTML pages shared by every part of the service: page rendering in the guest's language with safe
headers, and the error page.

``render`` picks the page's language (the app's ``ui_locales``, then ``Accept-Language``, then
``branding.default_language``) and gives the template ``t("key", **values)`` (escaped catalogue
text), ``lang`` and ``branding``. Top-level context values that are ``Message``s are put in that
language first, so handlers can pass texts whose language they do not know.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from gateway.http import page_headers, page_policy, page_raw_headers
from gateway.i18n.catalogue import Message
from gateway.i18n.templates import template_name
from gateway.i18n.translations import translations_for

CSP = "Content-Security-Policy"


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    form_action: str = "",
    headers: dict[str, str] | None = None,
    ui_locales: Sequence[str] = (),
) -> Response:
    config = request.app.state.runtime.config
    translations = translations_for(config.settings)
    lang = translations.negotiate(ui_locales, request.headers.get("accept-language"))
    catalogue = translations.catalogue(lang)
    for name, value in context.items():
        if isinstance(value, Message):
            context[name] = catalogue.resolve(value)
    context.setdefault("request", request)
    context["t"] = catalogue.html
    context["lang"] = lang
    context["branding"] = translations.branding
    # Rendered here rather than through ``TemplateResponse``: no template uses context
    # processors, and a plain ``HTMLResponse`` skips starlette's debug-extension plumbing.
    html = config.template(template_name(lang, template)).render(context)
    branding = translations.branding
    if headers:
        merged = page_headers(form_action)
        merged.update(headers)
        if branding.adapts_policy:
            merged[CSP] = branding.content_security_policy(merged[CSP])
        return HTMLResponse(html, status_code=status, headers=merged)
    # The same headers, in the same order, as ``headers=page_headers(...)`` gives: the page headers
    # (encoded once per policy) before the length and type ``HTMLResponse`` adds.
    policy = page_policy(form_action)
    if branding.adapts_policy:
        policy = branding.content_security_policy(policy)
    response = HTMLResponse(html, status_code=status)
    response.raw_headers[:0] = page_raw_headers(policy)
    return response


def error_page(
    request: Request,
    title: str | Message,
    detail: str | Message,
    *,
    status: int = 400,
    headers: dict[str, str] | None = None,
    ui_locales: Sequence[str] = (),
) -> Response:
    """The error page; a ``Message`` title or detail is shown in the page's language."""
    return render(
        request,
        "error.html",
        {"title": title, "detail": detail},
        status=status,
        headers=headers,
        ui_locales=ui_locales,
    )
