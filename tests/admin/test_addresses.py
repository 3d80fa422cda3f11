"""The invitable-address rule: ``check_address`` and the OpenAPI pattern say the same thing."""

from __future__ import annotations

import re

import pytest

from gateway.invitations.addresses import ADDRESS_PATTERN, check_address
from tests.admin.helpers import BAD_ADDRESSES

GOOD = [
    "a@b.co", "_a_@partner.example", "a.b-c@partner.example", "o'neil@partner.example", "a-.b@x.example",
    "UPPER@Partner.EXAMPLE", "x" * 64 + "@partner.example",
]  # fmt: skip


@pytest.mark.parametrize("address", GOOD)
def test_good_addresses_pass_both(address: str) -> None:
    assert check_address(address) == address.split("@")[0] + "@" + address.split("@")[1].lower()
    assert re.match(ADDRESS_PATTERN, address)


@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_bad_addresses_fail_both(address: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        check_address(address)
    assert re.match(ADDRESS_PATTERN, address) is None or len(address.split("@")[0]) > 64


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("a#b@x.example", "may not contain '#'"),
        (".a@x.example", "start or end with '.' or '-'"),
        ("a..b@x.example", "two dots in a row"),
        ("jürgen@x.example", "printable ASCII"),
        ("a@b@x.example", "exactly one @"),
        ("a@x", "not a valid domain"),
        ("x" * 65 + "@x.example", "longer than 64"),
    ],
)
def test_errors_say_what_is_wrong(address: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        check_address(address)
