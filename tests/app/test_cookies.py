"""``gateway.http.set_cookie`` writes the very ``Set-Cookie`` header ``Response.set_cookie`` writes
for the gateway's cookies (HttpOnly, ``Path=/``, ``SameSite=lax``, ``Secure`` on https), byte for
byte, both for the values it formats itself and for values that need ``http.cookies``' quoting.
The session and browser-binding cookies go through it."""

from __future__ import annotations

import secrets
from http.cookies import SimpleCookie
from typing import NoReturn, cast

import pytest
from starlette.responses import Response

from gateway.http import set_cookie
from gateway.secrets import SecretBox
from gateway.signin.browser import COOKIE_MAX_AGE, BrowserBinding
from gateway.signin.sessions import Sessions
from gateway.store.base import ArtefactStore

VALUES = [
    secrets.token_urlsafe(32),  # a browser id
    secrets.token_urlsafe(48),  # a session token
    "A-b_9",
    "needs quoting",  # a space: http.cookies quotes it
    'a"quote',
    "semi;colon",
    "comma,value",
    "é",
]


def starlette_header(name: str, value: str, max_age: int, secure: bool) -> list[tuple[bytes, bytes]]:
    response = Response()
    response.set_cookie(name, value, max_age=max_age, path="/", secure=secure, httponly=True, samesite="lax")
    return [h for h in response.raw_headers if h[0] == b"set-cookie"]


def our_header(name: str, value: str, max_age: int, secure: bool) -> list[tuple[bytes, bytes]]:
    response = Response()
    set_cookie(response, name, value, max_age=max_age, secure=secure)
    return [h for h in response.raw_headers if h[0] == b"set-cookie"]


NAMES = [("gw_session", 86400), ("__Host-gw_browser", COOKIE_MAX_AGE), ("x", 0)]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("secure", [False, True])
@pytest.mark.parametrize(("name", "max_age"), NAMES)
def test_the_header_is_starlettes_byte_for_byte(name: str, value: str, max_age: int, secure: bool) -> None:
    ours = our_header(name, value, max_age, secure)
    assert ours == starlette_header(name, value, max_age, secure)
    assert len(ours) == 1


@pytest.mark.parametrize("value", VALUES)
def test_a_browser_reads_back_the_value_and_the_attributes(value: str) -> None:
    (header,) = our_header("gw_session", value, 600, True)
    cookie = SimpleCookie()
    cookie.load(header[1].decode("latin-1"))
    morsel = cookie["gw_session"]
    assert morsel.value == value
    assert morsel["httponly"] and morsel["secure"] and morsel["samesite"] == "lax"
    assert morsel["path"] == "/" and morsel["max-age"] == "600" and not morsel["domain"]


def test_the_session_and_browser_cookies_go_through_it() -> None:
    box = SecretBox([secrets.token_urlsafe(32)])
    for secure in (False, True):
        binding = BrowserBinding(box, secure=secure)
        browser_id = binding.new_browser_id()
        response = Response()
        binding.set_cookie(response, browser_id)
        assert our_header(binding.cookie_name, browser_id, COOKIE_MAX_AGE, secure) == [
            h for h in response.raw_headers if h[0] == b"set-cookie"
        ]
        sessions = Sessions(store=cast(ArtefactStore, _NoStore()), secure=secure)
        token = secrets.token_urlsafe(32)
        response = Response()
        sessions.attach(response, token, 3600)
        assert starlette_header(sessions.cookie_name, token, 3600, secure) == [
            h for h in response.raw_headers if h[0] == b"set-cookie"
        ]


class _NoStore:
    """``Sessions.attach`` touches no store."""

    def __getattr__(self, name: str) -> NoReturn:
        raise AssertionError(f"the store was used: {name}")
