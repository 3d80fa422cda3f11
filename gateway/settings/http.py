"""Configuration of the HTTP front: ``http:`` in ``gateway.yaml``.

``trusted_proxies`` lists the reverse proxies (CIDR ranges) whose forwarding header may name the
client; left empty (the default) the socket peer is the client and every forwarding header is
ignored. ``client_address_header`` picks the one header those proxies write: ``X-Forwarded-For``
or RFC 7239 ``Forwarded``; the other is never read. How the header is walked lives in
:func:`gateway.http.client_ip`. ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` are never read:
every URL the gateway builds starts with ``issuer``, the public URL.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _proxy_range(value: str) -> str:
    try:
        network = ipaddress.ip_network(value)
    except ValueError:
        try:
            loose = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4 or IPv6 address range (CIDR)") from None
        raise ValueError(f"{value!r} has host bits set; did you mean {loose}?") from None
    if network.prefixlen == 0:
        raise ValueError(
            f"{value!r} trusts every address: any client could choose its own address; "
            "list the proxies' own ranges"
        )
    return str(network)


ProxyRange = Annotated[
    str,
    AfterValidator(_proxy_range),
    WithJsonSchema({"type": "string", "description": "An IPv4 or IPv6 range in CIDR notation."}),
]


class Http(BaseModel):
    """The reverse proxies in front of the gateway, and the header they name the client in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trusted_proxies: list[ProxyRange] = Field(
        [],
        description="Reverse proxies (CIDR ranges, e.g. `10.0.0.0/8`, `2001:db8::/64`, a bare address "
        "for one host) whose forwarding header names the client. Empty: the socket peer is the client.",
    )
    client_address_header: Literal["X-Forwarded-For", "Forwarded"] = Field(
        "X-Forwarded-For",
        description="The header the trusted proxies write: `X-Forwarded-For` or RFC 7239 `Forwarded`. "
        "Only this one is read.",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _unique(cls, ranges: list[str]) -> list[str]:
        seen: set[str] = set()
        for value in ranges:
            if value in seen:
                raise ValueError(f"{value!r} is listed twice")
            seen.add(value)
        return ranges

    @functools.cached_property
    def proxy_networks(self) -> tuple[Network, ...]:
        """The ranges as networks, parsed once per loaded configuration (not at every request)."""
        return tuple(ipaddress.ip_network(r) for r in self.trusted_proxies)
