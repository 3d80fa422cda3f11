"""Terms of use on the consent page (``invitations.terms_of_use``, b2b-concepts §3.3): the guest must
tick the box for the configured version; the acceptance is recorded on the user object."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.admin.conftest import ApiFactory
from tests.admin.helpers import REDIRECT, Api
from tests.admin.test_redemption import CSRF, consent, guest_of, invite, open_link, passcode_to_consent
from tests.support.inspect_store import snapshot

TERMS = {
    "display_name": "Contoso Terms & Conditions",
    "url": "https://contoso.example/terms",
    "version": "2024-06",
}


@pytest.fixture
async def terms_api(api_with: ApiFactory) -> AsyncIterator[Api]:
    async with api_with(invitations={"terms_of_use": TERMS}) as running:
        yield running


async def at_consent(api: Api) -> tuple[str, str]:
    """An invited guest who has proved the address and now sees the consent page: (guest id, sign-in path)."""
    guest_id, link = await invite(api)
    signin = await open_link(api, link)
    await passcode_to_consent(api, signin)
    return guest_id, signin


async def post_consent(api: Api, signin: str, **fields: str) -> httpx.Response:
    page = await api.client.get(f"{signin}/consent")
    assert page.status_code == 200
    match = CSRF.search(page.text)
    assert match
    return await api.client.post(
        f"{signin}/consent", data={"csrf": match.group(1), "decision": "accept", **fields}
    )


async def assert_refused_and_unchanged(api: Api, guest_id: str, response: httpx.Response) -> None:
    assert response.status_code == 400 and "location" not in response.headers
    assert (
        'id="error"' in response.text
        and "tick the box to accept Contoso Terms &amp; Conditions" in response.text
    )
    assert 'name="accept_terms"' in response.text  # the page again, with the box to tick
    assert "gw_session" not in response.headers.get("set-cookie", "")
    guest = guest_of(api, guest_id)
    assert guest["externalUserState"] == "PendingAcceptance"
    assert guest["identities"][0]["signInType"] == "userPrincipalName"
    assert "termsOfUseAcceptedVersion" not in guest and "termsOfUseAcceptedDateTime" not in guest
    assert snapshot(api.app).count("session") == 0


async def test_the_consent_page_shows_the_terms_checkbox(terms_api: Api) -> None:
    _, signin = await at_consent(terms_api)
    page = await terms_api.client.get(f"{signin}/consent")
    assert page.status_code == 200
    assert 'type="checkbox" name="accept_terms" id="accept-terms" value="2024-06" required' in page.text
    assert "I have read and accept" in page.text
    assert 'id="terms" href="https://contoso.example/terms"' in page.text
    assert "Contoso Terms &amp; Conditions" in page.text  # escaped, never raw HTML
    assert 'id="error"' not in page.text


async def test_accepting_without_the_checkbox_is_refused_and_changes_nothing(terms_api: Api) -> None:
    guest_id, signin = await at_consent(terms_api)
    refused = await post_consent(terms_api, signin)
    await assert_refused_and_unchanged(terms_api, guest_id, refused)
    # The same sign-in still works once the box is ticked.
    accepted = await post_consent(terms_api, signin, accept_terms="2024-06")
    assert accepted.status_code == 303 and accepted.headers["location"] == REDIRECT


async def test_another_version_is_refused(terms_api: Api) -> None:
    guest_id, signin = await at_consent(terms_api)
    for wrong in ("2023-01", "", "on"):
        refused = await post_consent(terms_api, signin, accept_terms=wrong)
        await assert_refused_and_unchanged(terms_api, guest_id, refused)


async def test_accepting_the_terms_records_the_version_and_completes(terms_api: Api) -> None:
    guest_id, signin = await at_consent(terms_api)
    accepted = await post_consent(terms_api, signin, accept_terms="2024-06")
    assert accepted.status_code == 303 and accepted.headers["location"] == REDIRECT
    assert "gw_session" in accepted.headers.get("set-cookie", "")
    guest = guest_of(terms_api, guest_id)
    assert guest["externalUserState"] == "Accepted"
    assert guest["termsOfUseAcceptedVersion"] == "2024-06"
    assert guest["termsOfUseAcceptedDateTime"] == guest["externalUserStateChangeDateTime"]


async def test_declining_needs_no_checkbox(terms_api: Api) -> None:
    guest_id, signin = await at_consent(terms_api)
    declined = await consent(terms_api, signin, "decline")
    assert declined.status_code == 200 and "did not accept" in declined.text
    guest = guest_of(terms_api, guest_id)
    assert guest["externalUserState"] == "PendingAcceptance" and "termsOfUseAcceptedVersion" not in guest


async def test_without_terms_nothing_is_asked_or_recorded(api: Api) -> None:
    guest_id, signin = await at_consent(api)
    page = await api.client.get(f"{signin}/consent")
    assert "accept_terms" not in page.text and "I have read and accept" not in page.text
    accepted = await consent(api, signin, "accept")
    assert accepted.status_code == 303
    guest = guest_of(api, guest_id)
    assert guest["externalUserState"] == "Accepted"
    assert "termsOfUseAcceptedVersion" not in guest and "termsOfUseAcceptedDateTime" not in guest


@pytest.mark.parametrize(
    "bad",
    [
        {**TERMS, "url": "http://contoso.example/terms"},
        {**TERMS, "version": "v 1"},
        {**TERMS, "display_name": ""},
        {**TERMS, "extra": 1},
    ],
)
def test_bad_terms_settings_are_refused(bad: dict[str, object]) -> None:
    from pydantic import ValidationError

    from gateway.settings.directory import Invitations

    with pytest.raises(ValidationError) as error:
        Invitations.model_validate({"terms_of_use": bad})
    assert error.value.errors()[0]["loc"][0] == "terms_of_use"


def test_loopback_http_terms_are_allowed() -> None:
    from gateway.settings.directory import Invitations

    terms = Invitations.model_validate({"terms_of_use": {**TERMS, "url": "http://127.0.0.1:8080/terms"}})
    assert terms.terms_of_use is not None and terms.terms_of_use.url == "http://127.0.0.1:8080/terms"
