"""Small HTTP helpers shared by every endpoint: security headers, JSON bodies, forms and query
strings, the client address (behind trusted reverse proxies), the gateway's own cookies, and the
write-behind wrapper for endpoints that make several store writes."""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import unquote_to_bytes, urlsplit

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from gateway.jsontext import ascii_bytes
from gateway.settings.http import Http, Network

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action {form_action}; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

MAX_FORM_BYTES = 64 * 1024
MAX_FORM_FIELDS = 100


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL: what a page's CSP ``form-action`` must allow when a form
    submission ends in a redirect there (Chromium applies ``form-action`` to that redirect)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def page_headers(form_action: str = "") -> dict[str, str]:
    """Headers for every HTML page: never cached, never framed, no inline script."""
    return {**PAGE_HEADERS, "Content-Security-Policy": page_policy(form_action)}


@functools.lru_cache(maxsize=256)
def page_raw_headers(policy: str) -> tuple[tuple[bytes, bytes], ...]:
    """``page_headers`` with ``policy`` as the CSP, encoded as Starlette encodes a response's
    headers (names lower-cased, Latin-1): once per policy, not once per page."""
    return tuple(
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in {**PAGE_HEADERS, "Content-Security-Policy": policy}.items()
    )


@functools.lru_cache(maxsize=256)
def page_policy(form_action: str) -> str:
    """The pages' CSP allowing ``form_action``; formatted once per origin (an app's, from the
    configuration), not once per page."""
    sources = f"'self' {form_action}" if form_action else "'self'"
    return PAGE_HEADERS["Content-Security-Policy"].format(form_action=sources)


_PLAIN_COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]+")  # a value ``http.cookies`` leaves unquoted


def set_cookie(response: Response, name: str, value: str, *, max_age: int, secure: bool) -> None:
    """Set one of the gateway's own cookies (HttpOnly, ``Path=/``, ``SameSite=lax``, ``Secure`` on
    https): the very header ``Response.set_cookie`` writes for these attributes, without its
    ``http.cookies`` round trip (~15 µs, ~100 k instructions a cookie) when ``value`` needs no
    quoting, as the gateway's random base64url values never do."""
    if not _PLAIN_COOKIE_VALUE.fullmatch(value):
        response.set_cookie(
            name, value, max_age=max_age, path="/", secure=secure, httponly=True, samesite="lax"
        )
        return
    attributes = f"HttpOnly; Max-Age={int(max_age)}; Path=/; SameSite=lax{'; Secure' if secure else ''}"
    response.raw_headers.append((b"set-cookie", f"{name}={value}; {attributes}".encode("latin-1")))


def json_response(
    body: Mapping[str, Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    *,
    cache: bool = False,
) -> Response:
    merged = {} if cache else dict(NO_STORE)
    if headers:
        merged.update(headers)
    return Response(
        ascii_bytes(body),  # json.dumps(body, separators=(",", ":")), by orjson where it can
        status_code=status,
        media_type="application/json",
        headers=merged,
    )


Endpoint = Callable[[Request], Awaitable[Response]]


def write_behind(endpoint: Endpoint) -> Endpoint:
    """Run ``endpoint`` in a write-behind block of the runtime's store (``ArtefactStore.batch``):
    its blind artefact writes go to the store together, in as few round trips as the operations
    between them allow, and all of them before its response is sent."""

    @functools.wraps(endpoint)
    async def batched(request: Request) -> Response:
        async with request.app.state.runtime.store.batch():
            return await endpoint(request)

    return batched


MAX_FORWARDED_HOPS = 16
"""Addresses of a forwarding header examined from the right; a longer chain of trusted proxies
than this is not believed (the peer is the client)."""

_FORWARDED_PAIR = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)=("(?:[^"\\]|\\.)*"|[^";,\s]*)\s*')
_FORWARDED_NODE = re.compile(r"^(?:\[([0-9A-Fa-f:.]+)\]|([0-9.]+))(?::(?:[0-9]{1,5}|_[A-Za-z0-9._-]+))?$")


def client_ip(request: Request) -> str:
    """The client's address: the socket peer, unless the peer is one of ``http.trusted_proxies``;
    then the first address from the right of ``http.client_address_header`` that is not a trusted
    proxy (see :func:`forwarded_client`). The one place the client address is read: conditional
    access locations, rate limits and the audit log all use it."""
    peer = request.client.host if request.client else None
    if peer is None:
        return "unknown"
    app = request.scope.get("app")
    runtime = getattr(getattr(app, "state", None), "runtime", None)
    if runtime is None:
        return peer
    front: Http = runtime.settings.http
    if not front.trusted_proxies:
        return peer
    header = front.client_address_header
    return forwarded_client(peer, request.headers.getlist(header), front.proxy_networks, header=header)


def forwarded_client(
    peer: str,
    header_lines: Sequence[str],
    trusted: Sequence[Network],
    *,
    header: Literal["X-Forwarded-For", "Forwarded"] = "X-Forwarded-For",
) -> str:
    """Who a request came from, given its socket ``peer`` and the lines of its forwarding header.

    A peer outside ``trusted`` is the client whatever the header says. From a trusted peer, the
    header's addresses are walked from the right (each proxy appends the address it received the
    request from), skipping trusted ones: the first untrusted address is the client; if every one
    is trusted, the leftmost. Only the part written by trusted proxies is parsed, so nothing a
    client puts in its own copy of the header can change the answer. Fail closed: a malformed or
    empty element in that part, an ``unknown`` or obfuscated RFC 7239 node, or a chain of more
    than ``MAX_FORWARDED_HOPS`` trusted addresses makes the peer the client.
    """
    peer_address = _ip(peer)
    if peer_address is None or not _in(peer_address, trusted) or not header_lines:
        return peer
    parts = ",".join(header_lines).rsplit(",", MAX_FORWARDED_HOPS)
    overflow = len(parts) > MAX_FORWARDED_HOPS
    if overflow:
        parts = parts[1:]  # the rest lies left of MAX_FORWARDED_HOPS trusted hops: never examined
    parse = _forwarded_for if header == "Forwarded" else _ip
    client: IPAddress | None = None
    for part in reversed(parts):
        client = parse(part.strip())
        if client is None:
            return peer
        if not _in(client, trusted):
            return str(client)
    return peer if overflow or client is None else str(client)


def _ip(text: str) -> IPAddress | None:
    """An IPv4 or IPv6 address (IPv4-mapped IPv6 as IPv4), or None for anything else."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _forwarded_for(element: str) -> IPAddress | None:
    """The ``for=`` address of one RFC 7239 forwarded-element, or None if the element is malformed,
    has no or several ``for`` parameters, or names an ``unknown`` or obfuscated node."""
    position, node = 0, None
    while True:
        pair = _FORWARDED_PAIR.match(element, position)
        if pair is None:
            return None
        if pair.group(1).lower() == "for":
            if node is not None:
                return None
            value = pair.group(2)
            node = re.sub(r"\\(.)", r"\1", value[1:-1]) if value.startswith('"') else value
        position = pair.end()
        if position == len(element):
            break
        if element[position] != ";":
            return None
        position += 1
    found = _FORWARDED_NODE.match(node or "")
    if found is None:
        return None
    if found.group(1) is not None:
        address = _ip(found.group(1))
        return address if isinstance(address, ipaddress.IPv6Address) or address is None else None
    return _ip(found.group(2))


def _in(address: IPAddress, networks: Sequence[Network]) -> bool:
    return any(address in network for network in networks)


class BadForm(Exception):
    """The request body is not a form we accept."""


def parse_urlencoded(text: str, *, max_fields: int | None = None) -> list[tuple[str, str]]:
    """``urllib.parse.parse_qsl(text, keep_blank_values=True, max_num_fields=max_fields)``, in a
    third of the time: the same pairs in the same order (``+`` is a space, percent-escapes are
    UTF-8 with bad sequences replaced, empty fields are skipped, a field without ``=`` has an
    empty value) and the same ``ValueError`` when there are more than ``max_fields`` fields."""
    if not text:
        return []
    if max_fields is not None and text.count("&") + 1 > max_fields:
        raise ValueError("Max number of fields exceeded")
    pairs: list[tuple[str, str]] = []
    for field in text.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = _unquote(name)
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = _unquote(value)
        pairs.append((name, value))
    return pairs


def _unquote(text: str) -> str:
    """``unquote(text, errors="replace")`` in half the time. The same for any ``str`` without lone
    surrogates (a strictly decoded body has none): ``unquote`` decodes each ASCII run's bytes as
    UTF-8, this the whole text's; a literal non-ASCII character is a complete UTF-8 sequence that
    starts with a lead byte, so it ends a broken sequence before it the same way an ASCII one does."""
    return unquote_to_bytes(text).decode("utf-8", "replace")


def _form_headers(scope: Mapping[str, Any]) -> tuple[bytes, bytes | None]:
    """The first ``Content-Type`` (empty if none) and ``Content-Length`` of a request, as
    ``request.headers.get`` finds them, in one pass over the raw headers."""
    content_type: bytes | None = None
    length: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            if content_type is None:
                content_type = value
        elif name == b"content-length" and length is None:
            length = value
    return content_type or b"", length


async def read_form(request: Request, *, max_bytes: int = MAX_FORM_BYTES) -> FormData:
    """A urlencoded form of at most ``max_bytes`` and 100 fields, however the body is framed."""
    raw_type, length = _form_headers(request.scope)
    content_type = raw_type.decode("latin-1").split(";", 1)[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise BadForm("the body must be application/x-www-form-urlencoded")
    if length is not None and (not length.isdigit() or int(length) > max_bytes):
        raise BadForm("the body is too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise BadForm("the body is too large")
    try:
        pairs: list[tuple[str, str | UploadFile]] = list(
            parse_urlencoded(body.decode("utf-8"), max_fields=MAX_FORM_FIELDS)
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadForm("the body is not a valid form") from exc
    return FormData(pairs)


def single_values(items: Iterable[tuple[str, Any]]) -> tuple[dict[str, str], str | None]:
    """Every parameter's first value, and the first name that is repeated, if any.

    RFC 6749 3.1 / 3.2: request parameters MUST NOT be included more than once. All parameters
    are kept even past a repeated one, so an error can still carry the request's ``state``.
    """
    values: dict[str, str] = {}
    repeated: str | None = None
    for key, value in items:
        if key not in values:
            values[key] = str(value)
        elif repeated is None:
            repeated = key
    return values, repeated


async def request_parameters(
    request: Request, *, max_bytes: int = MAX_FORM_BYTES
) -> tuple[dict[str, str], str | None]:
    """The query (GET) or urlencoded form (POST) parameters, as ``single_values`` returns them.

    Endpoints that take both (authorization, logout, upstream callbacks) read them here; a bad
    form body raises ``BadForm``.
    """
    if request.method == "POST":
        return single_values((await read_form(request, max_bytes=max_bytes)).multi_items())
    # ``request.query_params``'s pairs (the raw query decoded as Latin-1, then ``parse_qsl``), faster
    return single_values(parse_urlencoded(request.scope["query_string"].decode("latin-1")))
