"""HTML pages shared by every part of the service: the error page and page rendering with safe headers."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

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
    response: Response = request.app.state.runtime.templates.TemplateResponse(
        request, template, context, status_code=status, headers=merged
    )
    return response


def error_page(
    request: Request, title: str, detail: str, *, status: int = 400, headers: dict[str, str] | None = None
) -> Response:
    return render(request, "error.html", {"title": title, "detail": detail}, status=status, headers=headers)
