"""``gateway.http.read_form`` and ``parse_urlencoded``: what Starlette's request headers and
``urllib.parse.parse_qsl`` would give, faster.

``parse_urlencoded`` gives ``parse_qsl(text, keep_blank_values=True)``'s pairs for random texts of
escapes (good, truncated and invalid UTF-8), ``+``, ``=``, ``&`` and non-ASCII letters; ``read_form``
takes the first ``Content-Type`` and ``Content-Length`` as ``request.headers.get`` does, and refuses
what it refused. ``request_parameters`` of a GET gives what ``request.query_params`` holds, for raw
query strings with those pieces and bytes past ASCII (Latin-1 to Starlette).
"""

from __future__ import annotations

import random
from typing import Any
from urllib.parse import parse_qsl

import pytest
from starlette.requests import Request

from gateway.http import (
    MAX_FORM_FIELDS,
    BadForm,
    parse_urlencoded,
    read_form,
    request_parameters,
    single_values,
)

PIECES = [
    "a", "Z", "0", "-", ".", "~", "+", "=", "&", "&&", "%", "%4", "%41", "%40", "%zz", "%C3", "%A9",
    "%C3%A9", "%E2%82", "%E2%82%AC", "%F0%9F%98%80", "%FF", "%00", "%25", "%2B", "%26", "%3D",
    "é", "€", "😀", "ß", " ", ";",
]  # fmt: skip


def test_parse_urlencoded_is_parse_qsl() -> None:
    rng = random.Random(4231)
    for _ in range(3000):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 14)))
        assert parse_urlencoded(text) == parse_qsl(text, keep_blank_values=True), text


def test_parse_urlencoded_field_limit_is_parse_qsl_s() -> None:
    text = "&".join(f"f{i}=v" for i in range(MAX_FORM_FIELDS + 1))
    with pytest.raises(ValueError, match="Max number of fields exceeded"):
        parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    with pytest.raises(ValueError, match="Max number of fields exceeded"):
        parse_urlencoded(text, max_fields=MAX_FORM_FIELDS)


RAW_PIECES = [piece.encode() for piece in PIECES] + [b"\xc3", b"\xa9", b"\xff", b"\x80", b"\xc3\xa9"]


async def test_the_parameters_of_a_get_are_starlettes_query_params() -> None:
    rng = random.Random(7313)
    for _ in range(3000):
        query = b"".join(rng.choice(RAW_PIECES) for _ in range(rng.randrange(0, 14)))
        scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": query}
        expected = single_values(Request(scope).query_params.multi_items())
        assert await request_parameters(Request(scope)) == expected, query


def request(body: bytes, headers: list[tuple[bytes, bytes]]) -> Request:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        assert not sent, "the body is read once"
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": b""}
    return Request(scope, receive)


FORM = (b"content-type", b"application/x-www-form-urlencoded")


async def test_read_form_reads_a_form() -> None:
    body = b"csrf=abc&email=someone%40fabrikam.example&name=Zo%C3%AB+%C3"
    form = await read_form(
        request(body, [(b"host", b"x"), FORM, (b"content-length", str(len(body)).encode())])
    )
    assert form.multi_items() == [
        ("csrf", "abc"),
        ("email", "someone@fabrikam.example"),
        ("name", "Zoë \ufffd"),
    ]


@pytest.mark.parametrize(
    "headers",
    [
        [(b"content-type", b"Application/X-WWW-Form-URLEncoded ; charset=utf-8")],
        [FORM, (b"content-type", b"text/plain")],  # the first one counts
        [FORM, (b"content-length", b"5"), (b"content-length", b"x")],
    ],
)
async def test_read_form_takes_the_first_headers(headers: list[tuple[bytes, bytes]]) -> None:
    form = await read_form(request(b"a=1&b", headers))
    assert form.multi_items() == [("a", "1"), ("b", "")]


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ([], b"a=1"),  # no content type
        ([(b"content-type", b"text/plain"), FORM], b"a=1"),  # the first one is not a form
        ([(b"content-type", b"multipart/form-data; boundary=x")], b"a=1"),
        ([FORM, (b"content-length", b"-1")], b"a=1"),
        ([FORM, (b"content-length", b"1e3")], b"a=1"),
        ([FORM, (b"content-length", str(64 * 1024 + 1).encode())], b"a=1"),
        ([FORM], b"a=" + b"x" * (64 * 1024)),  # too large, however framed
        ([FORM], b"a=\xff"),  # not UTF-8
        ([FORM], b"&".join(b"f=v" for _ in range(MAX_FORM_FIELDS + 1))),
    ],
)
async def test_read_form_refuses(headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    with pytest.raises(BadForm):
        await read_form(request(body, headers))
