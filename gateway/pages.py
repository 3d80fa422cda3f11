"""HTML pages shared by every part of the service: the error page and page rendering with safe headers."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from gateway.http import page_headers


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    form_action: str = "",
    headers: dict[str, str] | None = None,
) -> Response:
    merged = page_headers(form_action)
    if headers:
        merged.update(headers)
    # Rendered here rather than through ``TemplateResponse``: no template uses context
    # processors, and a plain ``HTMLResponse`` skips starlette's debug-extension plumbing.
    context.setdefault("request", request)
    html = request.app.state.runtime.template(template).render(context)
    return HTMLResponse(html, status_code=status, headers=merged)


def error_page(
    request: Request, title: str, detail: str, *, status: int = 400, headers: dict[str, str] | None = None
) -> Response:
    return render(request, "error.html", {"title": title, "detail": detail}, status=status, headers=headers)
