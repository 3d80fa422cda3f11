"""Recipients blocking invitations (b2b-concepts §2.2): the mail footer link, the passcode pages,
the refusal of a blocked address, and what a wrong passcode or a missing CSRF token leaves."""

from __future__ import annotations

import re

import httpx

from gateway.invitations import blocklist
from idp_connectors.base import MailMessage
from tests.admin.helpers import ISSUER, SENTINEL, Api, assert_error, body
from tests.support.smtp_server import extract_passcode

GUEST = "blocker@partner.example"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
PASSCODE_ACTION = re.compile(r'action="(/invitations/block/[^"/]+/passcode)"')
MANAGE_ACTION = re.compile(r'action="(/invitations/block/[^"/]+/manage)"')


def _csrf(page: httpx.Response) -> str:
    match = CSRF.search(page.text)
    assert match is not None, page.text
    return match.group(1)


async def _passcode_page(api: Api, email: str = GUEST) -> httpx.Response:
    start = await api.client.get("/invitations/block")
    assert start.status_code == 200 and 'name="email"' in start.text
    sent = await api.client.post("/invitations/block", data={"email": email, "csrf": _csrf(start)})
    assert sent.status_code == 200, sent.text
    assert PASSCODE_ACTION.search(sent.text) is not None
    return sent


def _action(page: httpx.Response, pattern: re.Pattern[str]) -> str:
    match = pattern.search(page.text)
    assert match is not None, page.text
    return match.group(1)


async def _block(api: Api, email: str = GUEST) -> httpx.Response:
    page = await _passcode_page(api, email)
    code = extract_passcode(await api.smtp.wait_for(to=email, timeout=10))
    done = await api.client.post(_action(page, PASSCODE_ACTION), data={"passcode": code, "csrf": _csrf(page)})
    assert done.status_code == 200, done.text
    return done


async def _blocked(api: Api, email: str = GUEST) -> bool:
    return await blocklist.is_blocked(api.rt.settings, api.rt.store, email)


async def test_invitation_mail_footer_links_to_the_block_page(api: Api) -> None:
    response = await api.invite(await api.app_token(), body(GUEST, sendInvitationMessage=True))
    assert response.status_code == 201, response.text
    mail = await api.smtp.wait_for(to=GUEST, timeout=10)
    text = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    link = f"{ISSUER}/invitations/block"
    assert "To block future invitations from" in text.get_content() and link in text.get_content()
    assert f'href="{link}"' in html.get_content()


async def test_blocking_with_the_passcode_refuses_later_invitations(api: Api) -> None:
    done = await _block(api)
    passcode_subject = api.smtp.messages[0]["Subject"]
    assert 'data-blocked="yes"' in done.text and GUEST in done.text
    assert await _blocked(api)
    assert await _blocked(api, GUEST.upper())
    response = await api.invite(await api.app_token(), body(GUEST, sendInvitationMessage=True))
    error = assert_error(response, 403, "accessDenied", "recipient_blocked_invitations")
    assert "opted out" in error["message"]
    state = api.state()
    assert not [u for u in state.users.values() if u.get("creationType") == "Invitation"]
    assert not state.ids("invite-ticket") and not state.ids("invite-current")
    api.rt.outbox.send(MailMessage(to=SENTINEL, subject="sentinel", text="sentinel\n"))
    await api.smtp.wait_for(to=SENTINEL, timeout=10)
    assert {m["To"] for m in api.smtp.messages} == {GUEST, SENTINEL}
    assert [m["Subject"] for m in api.smtp.messages if m["To"] == GUEST] == [passcode_subject]


async def test_other_addresses_stay_invitable(api: Api) -> None:
    await _block(api)
    response = await api.invite(await api.app_token(), body("someone.else@partner.example"))
    assert response.status_code == 201, response.text


async def test_already_blocked_address_is_offered_unblock(api: Api) -> None:
    await blocklist.block(api.rt.settings, api.rt.store, GUEST)
    done = await _block(api)
    assert "had already blocked" in done.text and 'value="unblock"' in done.text


async def test_wrong_passcode_blocks_nothing(api: Api) -> None:
    page = await _passcode_page(api)
    code = extract_passcode(await api.smtp.wait_for(to=GUEST, timeout=10))
    wrong = str((int(code) + 1) % 10 ** len(code)).zfill(len(code))
    response = await api.client.post(
        _action(page, PASSCODE_ACTION), data={"passcode": wrong, "csrf": _csrf(page)}
    )
    assert response.status_code == 400 and "not right" in response.text
    assert MANAGE_ACTION.search(response.text) is None
    assert not await _blocked(api)
    invited = await api.invite(await api.app_token(), body(GUEST))
    assert invited.status_code == 201, invited.text


async def test_missing_csrf_is_refused_and_sends_nothing(api: Api) -> None:
    await api.client.get("/invitations/block")  # the browser cookie is set
    response = await api.client.post("/invitations/block", data={"email": GUEST})
    assert response.status_code == 403 and "expired" in response.text
    await api.assert_no_mail()


async def test_missing_csrf_on_passcode_blocks_nothing(api: Api) -> None:
    page = await _passcode_page(api)
    code = extract_passcode(await api.smtp.wait_for(to=GUEST, timeout=10))
    response = await api.client.post(_action(page, PASSCODE_ACTION), data={"passcode": code})
    assert response.status_code == 403
    assert not await _blocked(api)


async def test_invalid_address_sends_nothing(api: Api) -> None:
    start = await api.client.get("/invitations/block")
    response = await api.client.post(
        "/invitations/block", data={"email": "not-an-address", "csrf": _csrf(start)}
    )
    assert response.status_code == 400 and "valid email address" in response.text
    await api.assert_no_mail()


async def test_unblock_allows_invitations_again(api: Api) -> None:
    done = await _block(api)
    assert await _blocked(api)
    unblocked = await api.client.post(
        _action(done, MANAGE_ACTION), data={"action": "unblock", "csrf": _csrf(done)}
    )
    assert unblocked.status_code == 200 and 'data-blocked="no"' in unblocked.text
    assert not await _blocked(api)
    invited = await api.invite(await api.app_token(), body(GUEST))
    assert invited.status_code == 201, invited.text
    again = await api.client.post(
        _action(unblocked, MANAGE_ACTION), data={"action": "block", "csrf": _csrf(unblocked)}
    )
    assert again.status_code == 200 and 'data-blocked="yes"' in again.text
    assert await _blocked(api)


async def test_manage_without_csrf_changes_nothing(api: Api) -> None:
    done = await _block(api)
    response = await api.client.post(_action(done, MANAGE_ACTION), data={"action": "unblock"})
    assert response.status_code == 403
    assert await _blocked(api)


async def test_other_browser_cannot_use_the_flow(api: Api) -> None:
    done = await _block(api)
    api.client.cookies.clear()
    response = await api.client.post(
        _action(done, MANAGE_ACTION), data={"action": "unblock", "csrf": _csrf(done)}
    )
    assert response.status_code == 403
    assert await _blocked(api)


async def test_block_list_stores_no_address(api: Api) -> None:
    await blocklist.block(api.rt.settings, api.rt.store, GUEST)
    box = blocklist.boxes(api.rt.settings)[0]
    name = f"{blocklist.PURPOSE}:{box.keyed_hash(blocklist.PURPOSE, GUEST)}:0"
    assert await api.rt.store.get_meta(name) == blocklist.BLOCKED
    assert GUEST not in name
