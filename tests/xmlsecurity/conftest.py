"""Keys for the XML-security tests, generated once per session (RSA-2048, P-256, an attacker's
RSA-2048 and a too-short RSA-1024)."""

from __future__ import annotations

import pytest

from tests.xmlsecurity.samples import KeyPair, ec_pair, rsa_pair


@pytest.fixture(scope="session")
def idp() -> KeyPair:
    return rsa_pair()


@pytest.fixture(scope="session")
def idp_ec() -> KeyPair:
    return ec_pair()


@pytest.fixture(scope="session")
def attacker() -> KeyPair:
    return rsa_pair(common_name="idp.example")


@pytest.fixture(scope="session")
def weak() -> KeyPair:
    return rsa_pair(bits=1024)
