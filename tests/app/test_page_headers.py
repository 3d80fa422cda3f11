"""``gateway.pages.render``'s response headers are the ones ``HTMLResponse(headers=page_headers(...))``
gives, byte for byte and in order: with and without extra headers (which replace a page header in
its place or come after them), with the default CSP and one a branding adapts (inline style, logo
origin), for several form actions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import HTMLResponse

from gateway.http import page_headers
from gateway.i18n.translations import translations_for
from gateway.pages import CSP, render
from gateway.runtime import Runtime
from tests.support.gateway_app import make_settings, running_app

BRANDED = {
    "branding": {"colors": {"primary": "#0B6E4F"}, "logo_url": "https://cdn.contoso.example/logo.png"},
}


def before(html: str, status: int, form_action: str, headers: dict[str, str] | None, rt: Runtime) -> Any:
    """What ``render`` answered before its headers were encoded once per policy."""
    merged = page_headers(form_action)
    if headers:
        merged.update(headers)
    branding = translations_for(rt.settings).branding
    if branding.adapts_policy:
        merged[CSP] = branding.content_security_policy(merged[CSP])
    return HTMLResponse(html, status_code=status, headers=merged).raw_headers


@pytest.mark.parametrize("overrides", [{}, BRANDED])
async def test_page_headers_are_unchanged(tmp_path: Path, overrides: dict[str, Any]) -> None:
    async with running_app(make_settings(tmp_path, **overrides)) as (app, _):
        rt: Runtime = app.state.runtime
        scope = {"type": "http", "app": app, "headers": [(b"accept-language", b"de, en;q=0.5")]}
        for form_action in ("", "https://app.fabrikam.example", "http://127.0.0.1:8000"):
            for headers in (None, {}, {"Retry-After": "7"}, {"Cache-Control": "private", "X-Extra": "1"}):
                for status in (200, 403):
                    response = render(
                        Request(scope),
                        "error.html",
                        {"title": "Title", "detail": "Detail"},
                        status=status,
                        form_action=form_action,
                        headers=headers,
                    )
                    html = response.body.decode()
                    assert response.raw_headers == before(html, status, form_action, headers, rt)
        if overrides:
            assert "cdn.contoso.example" in response.headers["content-security-policy"]
