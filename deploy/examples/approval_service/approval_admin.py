"""The admin side: an HTML page of access requests with Approve / Deny buttons, and a JSON API for scripts.

Both use HTTP Basic with the user name ``admin`` and the admin password. A browser sends those
credentials with any request to this origin, including one another site makes it send, so changes are
guarded against cross-site request forgery: the page's forms carry a token (``CsrfTokens``) that is
checked in constant time, and the JSON API accepts only ``Content-Type: application/json`` (which no
cross-site form can send without a CORS preflight this service never answers). Both also refuse
requests whose ``Sec-Fetch-Site`` says another site sent them. The page runs no script; its
Content-Security-Policy allows nothing but its own stylesheet (by hash) and forms posting to itself.
Everything shown is HTML-escaped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
import time
from urllib.parse import parse_qs

from approval_auth import BasicRealm
from approval_http import NO_STORE, BodyTooLarge, cross_site, media_type, problem, read_body
from approval_store import STATUSES, AccessRequest, ApprovalStore, Status
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

ADMIN_USER = "admin"
CSRF_LIFETIME = 8 * 3600
MAX_FORM = 4096
DECISIONS: dict[str, Status] = {"approve": "approved", "deny": "denied"}
log = logging.getLogger("approval_service")

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem}table{border-collapse:collapse}"
    "th,td{border:1px solid #bbb;padding:.3rem .6rem;text-align:left;vertical-align:top}"
    "form{display:inline;margin-right:.3rem}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
PAGE_HEADERS = {
    "Content-Security-Policy": f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    **NO_STORE,
}


class CsrfTokens:
    """Form tokens ``<issued unix time>.<HMAC-SHA256 of it>``, valid for ``lifetime`` seconds.

    The key is derived from the admin password, so every worker accepts every worker's tokens, a restart
    keeps open pages working, and changing the password invalidates them all.
    """

    def __init__(self, secret: str, lifetime: int = CSRF_LIFETIME) -> None:
        self._key = hmac.new(secret.encode(), b"approval-service form token v1", hashlib.sha256).digest()
        self.lifetime = lifetime

    def _mac(self, issued: str) -> str:
        digest = hmac.new(self._key, issued.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, now: float | None = None) -> str:
        issued = str(int(time.time() if now is None else now))
        return f"{issued}.{self._mac(issued)}"

    def valid(self, token: str, now: float | None = None) -> bool:
        issued, _, mac = token.partition(".")
        if not issued.isdigit() or len(issued) > 12:
            return False
        if not hmac.compare_digest(mac.encode(), self._mac(issued).encode()):
            return False
        age = (time.time() if now is None else now) - int(issued)
        return -60 <= age <= self.lifetime


def _cell(value: str | None) -> str:
    return f"<td>{html.escape(value)}</td>" if value else "<td></td>"


def _row(request: Request, entry: AccessRequest, token: str) -> str:
    identity = f"{entry.issuer} / {entry.issuer_assigned_id}" if entry.issuer else None
    attributes = "<br>".join(
        f"{html.escape(name)} = {html.escape(json.dumps(value, ensure_ascii=False))}"
        for name, value in sorted(entry.attributes.items())
    )
    buttons = []
    for decision, status in DECISIONS.items():
        if entry.status != status:
            action = request.url_for("admin_decide", request_id=entry.id, decision=decision).path
            buttons.append(
                f'<form method="post" action="{html.escape(action)}">'
                f'<input type="hidden" name="csrf_token" value="{html.escape(token)}">'
                f'<button type="submit">{decision.capitalize()}</button></form>'
            )
    cells = [
        f"<td>{entry.id}</td>",
        _cell(entry.status),
        _cell(entry.email),
        _cell(identity),
        _cell(entry.display_name),
        f"<td>{attributes}</td>",
        _cell(entry.ui_locales),
        _cell(entry.created_at),
        _cell(entry.decided_at),
        f"<td>{''.join(buttons)}</td>",
    ]
    return f"<tr>{''.join(cells)}</tr>"


def render_page(request: Request, entries: list[AccessRequest], token: str) -> str:
    """The admin page: every request, pending first, with the buttons that change its status."""
    if entries:
        heads = ("#", "Status", "Email", "Identity", "Name", "Attributes", "Language", "Requested",
                 "Decided", "Decision")  # fmt: skip
        head = "".join(f"<th>{h}</th>" for h in heads)
        rows = "\n".join(_row(request, entry, token) for entry in entries)
        body = f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>"
    else:
        body = "<p>No access requests yet.</p>"
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Access requests</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n<h1>Access requests</h1>\n{body}\n</body>\n</html>\n"
    )


def _plain(status: int, text: str) -> PlainTextResponse:
    return PlainTextResponse(text + "\n", status, PAGE_HEADERS)


def routes(store: ApprovalStore, realm: BasicRealm, csrf: CsrfTokens) -> list[Route]:
    """The admin page, its form targets and the JSON API, all behind ``realm``."""

    async def page(request: Request) -> Response:
        if not realm.allows(request):
            return realm.challenge(as_json=False)
        entries = await run_in_threadpool(store.requests)
        return HTMLResponse(render_page(request, entries, csrf.issue()), headers=PAGE_HEADERS)

    async def decide_form(request: Request) -> Response:
        if not realm.allows(request):
            return realm.challenge(as_json=False)
        status = DECISIONS.get(request.path_params["decision"])
        if status is None:
            return _plain(404, "Not Found")
        if cross_site(request):
            return _plain(403, "Cross-site form posts are refused.")
        if media_type(request) != "application/x-www-form-urlencoded":
            return _plain(415, "Send the admin page's form.")
        try:
            form = parse_qs((await read_body(request, MAX_FORM)).decode("utf-8", "replace"), max_num_fields=8)
        except BodyTooLarge:
            return _plain(413, "The form is too large.")
        except ValueError:
            return _plain(400, "The form has too many fields.")
        tokens = form.get("csrf_token", [])
        if len(tokens) != 1 or not csrf.valid(tokens[0]):
            return _plain(403, "This form has expired or did not come from the admin page: reload the page.")
        updated = await run_in_threadpool(store.decide, request.path_params["request_id"], status)
        if updated is None:
            return _plain(404, "There is no such access request.")
        log.info("access request %d %s on the admin page", updated.id, status)
        return RedirectResponse(request.url_for("admin_page").path, 303, headers=NO_STORE)

    async def list_api(request: Request) -> Response:
        if not realm.allows(request):
            return realm.challenge(as_json=True)
        wanted = request.query_params.get("status")
        if wanted is not None and wanted not in STATUSES:
            return problem(400, f"status must be one of {', '.join(STATUSES)}")
        status = next((s for s in STATUSES if s == wanted), None)
        entries = await run_in_threadpool(store.requests, status)
        return JSONResponse({"value": [entry.to_json() for entry in entries]}, headers=NO_STORE)

    async def get_api(request: Request) -> Response:
        if not realm.allows(request):
            return realm.challenge(as_json=True)
        entry = await run_in_threadpool(store.get, request.path_params["request_id"])
        if entry is None:
            return problem(404, "there is no such access request")
        return JSONResponse(entry.to_json(), headers=NO_STORE)

    async def decide_api(request: Request) -> Response:
        if not realm.allows(request):
            return realm.challenge(as_json=True)
        status = DECISIONS.get(request.path_params["decision"])
        if status is None:
            return problem(404, "the decisions are approve and deny")
        if cross_site(request):
            return problem(403, "cross-site requests are refused")
        if media_type(request) != "application/json":
            return problem(415, "send Content-Type: application/json (the body may be empty or {})")
        try:
            raw = await read_body(request, MAX_FORM)
            body = json.loads(raw) if raw.strip() else {}
        except BodyTooLarge:
            return problem(413, f"the body is longer than {MAX_FORM} bytes")
        except ValueError:
            return problem(400, "the body is not JSON")
        if not isinstance(body, dict):
            return problem(400, "the body must be a JSON object")
        updated = await run_in_threadpool(store.decide, request.path_params["request_id"], status)
        if updated is None:
            return problem(404, "there is no such access request")
        log.info("access request %d %s through the admin API", updated.id, status)
        return JSONResponse(updated.to_json(), headers=NO_STORE)

    return [
        Route("/admin", page, methods=["GET"], name="admin_page"),
        Route(
            "/admin/requests/{request_id:int}/{decision}", decide_form, methods=["POST"], name="admin_decide"
        ),
        Route("/admin/api/requests", list_api, methods=["GET"]),
        Route("/admin/api/requests/{request_id:int}", get_api, methods=["GET"]),
        Route("/admin/api/requests/{request_id:int}/{decision}", decide_api, methods=["POST"]),
    ]
