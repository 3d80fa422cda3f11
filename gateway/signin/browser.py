"""Binding a sign-in to the browser that started it, and CSRF tokens for its forms.

The browser cookie is an opaque random value (HttpOnly, SameSite=Lax, ``__Host-`` and
``Secure`` on https issuers). A transaction stores only a keyed hash of it; each form
carries a MAC over (transaction id, browser id) that no other browser or sign-in can reuse.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

from gateway.http import set_cookie
from gateway.secrets import SecretBox

COOKIE_MAX_AGE = 400 * 86400  # the longest lifetime browsers allow (RFC 6265bis 5.5)


class BrowserBinding:
    def __init__(self, box: SecretBox, *, secure: bool) -> None:
        self._box = box
        self.secure = secure
        self.cookie_name = "__Host-gw_browser" if secure else "gw_browser"

    def browser_id(self, request: Request) -> str | None:
        value = request.cookies.get(self.cookie_name)
        if value is None or not (20 <= len(value) <= 64):
            return None
        return value

    @staticmethod
    def new_browser_id() -> str:
        return secrets.token_urlsafe(32)

    def set_cookie(self, response: Response, browser_id: str) -> None:
        set_cookie(response, self.cookie_name, browser_id, max_age=COOKIE_MAX_AGE, secure=self.secure)

    def binding(self, browser_id: str) -> str:
        return self._box.keyed_hash("browser-binding", browser_id)

    def matches(self, stored_binding: str, request: Request) -> bool:
        browser_id = self.browser_id(request)
        if browser_id is None:
            return False
        return hmac.compare_digest(self.binding(browser_id), stored_binding)

    def csrf_token(self, signin_id: str, browser_id: str) -> str:
        return self._box.mac("csrf", f"{signin_id}\x00{browser_id}")

    def check_csrf(self, signin_id: str, request: Request, token: str | None) -> bool:
        browser_id = self.browser_id(request)
        if browser_id is None or not token or len(token) > 128:
            return False
        return self._box.verify_mac("csrf", f"{signin_id}\x00{browser_id}", token)
