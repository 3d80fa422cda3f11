"""The test IdP over real HTTP on loopback (as browser tests use it): metadata fetched by the connector."""

from __future__ import annotations

from tests.support.saml_idp import ServiceProvider, serve_on_loopback


async def test_a_sign_in_against_the_idp_served_on_loopback() -> None:
    with serve_on_loopback() as idp:
        assert idp.metadata_url.startswith("http://127.0.0.1:")
        sp = ServiceProvider(None, idp=idp)
        try:
            identity = await sp.sign_in()
        finally:
            await sp.http.aclose()
    assert identity.issuer == idp.entity_id
    assert identity.email == "alice@fabrikam.example"
