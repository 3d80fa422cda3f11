"""Trusted proxies: ``http.trusted_proxies`` / ``client_address_header`` and ``client_ip``.

``forwarded_client`` is table-tested; the settings' bad inputs are placed errors that leave nothing
behind; ``client_ip`` is driven through a real Starlette request with and without a runtime.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gateway.http import MAX_FORWARDED_HOPS, client_ip, forwarded_client
from gateway.settings import ConfigError, load_settings
from gateway.settings.http import Http
from tests.support.gateway_app import SECRET, make_settings

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8:1::/48"))
PROXY = "10.0.0.5"

XFF_CASES = [
    # (name, peer, header lines, expected client)
    ("untrusted peer: the header is ignored", "198.51.100.9", ["203.0.113.1"], "198.51.100.9"),
    ("trusted peer, no header: the peer", PROXY, [], PROXY),
    ("trusted peer, one hop", PROXY, ["203.0.113.1"], "203.0.113.1"),
    ("the rightmost untrusted wins", PROXY, ["192.0.2.1, 203.0.113.1"], "203.0.113.1"),
    ("trusted hops are skipped", PROXY, ["203.0.113.1, 10.1.2.3, 10.9.9.9"], "203.0.113.1"),
    ("spoofed left part never read", PROXY, ["1.1.1.1, not-an-ip, 203.0.113.1"], "203.0.113.1"),
    ("several header lines join in order", PROXY, ["192.0.2.1", "203.0.113.1, 10.1.1.1"], "203.0.113.1"),
    ("all trusted: the leftmost", PROXY, ["10.3.3.3, 10.2.2.2"], "10.3.3.3"),
    ("malformed in the trusted part: the peer", PROXY, ["203.0.113.1, garbage"], PROXY),
    ("empty element: the peer", PROXY, ["203.0.113.1, "], PROXY),
    ("empty header: the peer", PROXY, [""], PROXY),
    ("address with a port is malformed", PROXY, ["203.0.113.1:443"], PROXY),
    ("IPv6 client", PROXY, ["2001:db8:ffff::1"], "2001:db8:ffff::1"),
    ("IPv6 proxy peer", "2001:db8:1::7", ["203.0.113.1"], "203.0.113.1"),
    ("IPv6 is normalised", PROXY, ["2001:DB8:0:0:0:0:0:1"], "2001:db8::1"),
    ("IPv4-mapped peer counts as IPv4", "::ffff:10.0.0.5", ["203.0.113.1"], "203.0.113.1"),
    ("IPv4-mapped hop is trusted as IPv4", PROXY, ["203.0.113.1, ::ffff:10.1.1.1"], "203.0.113.1"),
    ("IPv4-mapped client is reported as IPv4", PROXY, ["::ffff:203.0.113.1"], "203.0.113.1"),
    ("a non-IP peer (unix socket) is kept", "testclient", ["203.0.113.1"], "testclient"),
    ("leading zeros are not an address", PROXY, ["203.0.113.01"], PROXY),
    (
        "up to MAX_FORWARDED_HOPS trusted hops are walked",
        PROXY,
        ["203.0.113.1, " + ", ".join(["10.0.0.1"] * (MAX_FORWARDED_HOPS - 1))],
        "203.0.113.1",
    ),
    (
        "a longer trusted chain is not believed",
        PROXY,
        ["203.0.113.1, " + ", ".join(["10.0.0.1"] * MAX_FORWARDED_HOPS)],
        PROXY,
    ),
    (
        "a long client-written left part is never walked",
        PROXY,
        [", ".join(["192.0.2.1"] * 500) + ", 203.0.113.1"],
        "203.0.113.1",
    ),
]


@pytest.mark.parametrize(
    ("peer", "lines", "expected"), [c[1:] for c in XFF_CASES], ids=[c[0] for c in XFF_CASES]
)
def test_x_forwarded_for(peer: str, lines: list[str], expected: str) -> None:
    assert forwarded_client(peer, lines, PROXIES, header="X-Forwarded-For") == expected


FORWARDED_CASES = [
    ("one element", ["for=203.0.113.1"], "203.0.113.1"),
    ("quoted, with other parameters", ['for="203.0.113.1";proto=https;by=10.0.0.5'], "203.0.113.1"),
    ("parameter names are case-insensitive", ["For=203.0.113.1"], "203.0.113.1"),
    ("IPv4 with a port", ['for="203.0.113.1:4711"'], "203.0.113.1"),
    ("IPv6 in brackets with a port", ['for="[2001:db8:cafe::17]:4711"'], "2001:db8:cafe::17"),
    ("IPv6 in brackets", ['for="[2001:db8:cafe::17]"'], "2001:db8:cafe::17"),
    ("obfuscated port", ['for="203.0.113.1:_abc"'], "203.0.113.1"),
    ("rightmost untrusted", ["for=192.0.2.1, for=203.0.113.1, for=10.0.0.9"], "203.0.113.1"),
    ("spoofed left part never read", ['for="broken, for=203.0.113.1'], "203.0.113.1"),
    ("unknown node: the peer", ["for=unknown"], PROXY),
    ("obfuscated node: the peer", ["for=_hidden"], PROXY),
    ("no for parameter: the peer", ["proto=https;by=10.0.0.5"], PROXY),
    ("two for parameters: the peer", ["for=203.0.113.1;for=192.0.2.1"], PROXY),
    ("IPv6 without brackets: the peer", ['for="2001:db8::1"'], PROXY),
    ("IPv4 in brackets: the peer", ['for="[203.0.113.1]"'], PROXY),
    ("unbalanced quote: the peer", ['for="203.0.113.1'], PROXY),
    ("garbage between pairs: the peer", ["for=203.0.113.1 proto=https"], PROXY),
    ("empty value: the peer", ["for="], PROXY),
    ("a bare X-Forwarded-For value is not an element", ["203.0.113.1"], PROXY),
]


@pytest.mark.parametrize(
    ("lines", "expected"), [c[1:] for c in FORWARDED_CASES], ids=[c[0] for c in FORWARDED_CASES]
)
def test_rfc7239_forwarded(lines: list[str], expected: str) -> None:
    assert forwarded_client(PROXY, lines, PROXIES, header="Forwarded") == expected


def test_each_header_reads_only_its_own_syntax() -> None:
    assert forwarded_client(PROXY, ["for=203.0.113.1"], PROXIES, header="X-Forwarded-For") == PROXY


def test_nothing_trusted_means_the_peer() -> None:
    assert forwarded_client(PROXY, ["203.0.113.1"], (), header="X-Forwarded-For") == PROXY


# --- settings ------------------------------------------------------------------------------------


def test_default_trusts_no_proxy() -> None:
    http = Http()
    assert http.trusted_proxies == []
    assert http.client_address_header == "X-Forwarded-For"
    assert http.proxy_networks == ()


def test_ranges_are_normalised_and_parsed_once() -> None:
    http = Http(trusted_proxies=["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"])
    assert http.trusted_proxies == ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]
    assert http.proxy_networks is http.proxy_networks  # cached on the settings object
    assert ipaddress.ip_address("192.0.2.7") in http.proxy_networks[1]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"trusted_proxies": ["10.0.0.1/8"]}, "has host bits set; did you mean 10.0.0.0/8?"),
        ({"trusted_proxies": ["proxy.internal"]}, "is not an IPv4 or IPv6 address range (CIDR)"),
        ({"trusted_proxies": ["0.0.0.0/0"]}, "trusts every address"),
        ({"trusted_proxies": ["::/0"]}, "trusts every address"),
        ({"trusted_proxies": ["10.0.0.1", "10.0.0.1/32"]}, "'10.0.0.1/32' is listed twice"),
        ({"client_address_header": "X-Real-IP"}, "'X-Forwarded-For' or 'Forwarded'"),
        ({"trusted_proxy": ["10.0.0.0/8"]}, "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_are_refused(value: dict[str, Any], message: str) -> None:
    with pytest.raises(
        ValidationError, match=message.replace("?", r"\?").replace("(", r"\(").replace(")", r"\)")
    ):
        Http.model_validate(value)


def test_config_file_error_is_placed_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "issuer: http://127.0.0.1:8000\n"
        "tenant: {id: 4f5c2b0e-6a71-4c3e-9a8e-2f1d7c9b1a00, domain: contoso.example, name: Contoso}\n"
        f"secrets: {{key: {SECRET}}}\n"
        "mail: {from: Contoso <no-reply@contoso.example>, console: true}\n"
        "connectors: [{id: email, type: email_otp}]\n"
        "http:\n"
        "  trusted_proxies:\n"
        "    - 10.0.0.0/8\n"
        "    - 0.0.0.0/0\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert [str(p) for p in caught.value.problems] == [
        f"{config}:9:7: http.trusted_proxies[1]: '0.0.0.0/0' trusts every address: any client could "
        "choose its own address; list the proxies' own ranges"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gateway.yaml"]


def test_config_file_loads_http_section(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, http={"trusted_proxies": ["10.0.0.0/8"], "client_address_header": "Forwarded"}
    )
    assert settings.http.client_address_header == "Forwarded"
    assert settings.http.proxy_networks == (ipaddress.ip_network("10.0.0.0/8"),)


# --- client_ip on a real request -----------------------------------------------------------------


async def _seen(settings: Any, peer: str, headers: dict[str, str]) -> str:
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(client_ip(request))

    app = Starlette(routes=[Route("/", echo)])
    if settings is not None:
        app.state.runtime = SimpleNamespace(settings=settings)
    transport = httpx.ASGITransport(app=app, client=(peer, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        return (await client.get("/", headers=headers)).text


async def test_client_ip_without_trusted_proxies_ignores_headers(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    seen = await _seen(
        settings, "127.0.0.1", {"X-Forwarded-For": "203.0.113.1", "Forwarded": "for=203.0.113.1"}
    )
    assert seen == "127.0.0.1"


async def test_client_ip_behind_a_trusted_proxy(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, http={"trusted_proxies": ["10.0.0.0/8"]})
    headers = {"X-Forwarded-For": "192.0.2.1, 203.0.113.1", "Forwarded": "for=198.51.100.1"}
    assert await _seen(settings, "10.0.0.5", headers) == "203.0.113.1"
    assert await _seen(settings, "198.51.100.50", headers) == "198.51.100.50"  # not a proxy: ignored


async def test_client_ip_reads_only_the_configured_header(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, http={"trusted_proxies": ["10.0.0.0/8"], "client_address_header": "Forwarded"}
    )
    assert await _seen(settings, "10.0.0.5", {"X-Forwarded-For": "203.0.113.1"}) == "10.0.0.5"
    assert await _seen(settings, "10.0.0.5", {"Forwarded": 'for="[2001:db8::9]:1"'}) == "2001:db8::9"


async def test_client_ip_without_a_runtime_is_the_peer() -> None:
    assert await _seen(None, "10.0.0.5", {"X-Forwarded-For": "203.0.113.1"}) == "10.0.0.5"
