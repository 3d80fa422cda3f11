"""The assembled service for one process: settings, store, secrets, keys, mail and connectors.

``open_runtime`` runs in the app's lifespan (once per worker); ``close`` releases it. The
first-start work (schema, dev secret, first keys) is ``gateway.bootstrap``'s and is done
before workers fork; here it is repeated idempotently so tests and single processes work.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import jinja2
from starlette.templating import Jinja2Templates

from gateway.i18n.templates import install as install_languages
from gateway.i18n.translations import translations_for
from gateway.mail.outbox import Outbox, open_outbox
from gateway.oidc.backchannel import BackchannelSender
from gateway.policy.home_realm import RealmIndex, build_index
from gateway.secrets import SecretBox, load_or_create_dev_secret
from gateway.settings.models import Settings
from gateway.signin.browser import BrowserBinding
from gateway.signin.sessions import Sessions
from gateway.signup.api_connector import ApiConnectorClient, open_api_connectors
from gateway.store.base import Store
from gateway.store.factory import open_store
from gateway.tokens.keys import KeyRing, ensure_keys
from idp_connectors.base import Connector, ConnectorContext, RedirectConnector
from idp_connectors.email_otp.config import EmailOtpConfig
from idp_connectors.email_otp.connector import EmailOtpConnector
from idp_connectors.registry import ConnectorConfig

TEMPLATES = Path(__file__).parent / "templates"
KEY_REFRESH_SECONDS = 30


def secret_keys(settings: Settings) -> list[str]:
    if settings.secrets is not None:
        return settings.secrets.keys
    return [load_or_create_dev_secret()]


def signing_algorithms(settings: Settings) -> set[str]:
    """Both algorithms always have a key: ES256 by default, RS256 for apps that ask for it."""
    return {"ES256", "RS256", settings.keys.algorithm}


async def first_start(settings: Settings, store: Store, box: SecretBox, now: int) -> bytes:
    """Idempotent start-up work: schema, signing keys, the pairwise salt. Returns the salt."""
    await store.migrate()
    await ensure_keys(store, box, signing_algorithms(settings), now)
    salt = await store.set_meta_if_absent("pairwise_salt", base64.b64encode(secrets.token_bytes(32)).decode())
    return base64.b64decode(salt)


@dataclass
class Runtime:
    settings: Settings
    store: Store
    box: SecretBox
    keys: KeyRing
    outbox: Outbox
    pairwise_salt: bytes
    templates: Jinja2Templates
    browser: BrowserBinding
    sessions: Sessions
    email_otp: EmailOtpConnector
    connectors: dict[str, Connector]
    connector_types: dict[str, str]
    realm: RealmIndex
    http: httpx.AsyncClient
    backchannel: BackchannelSender
    clock: Callable[[], float] = time.time
    api_connectors: dict[str, ApiConnectorClient] = field(default_factory=dict)
    """The user flows' API connectors by id (``gateway.signup.api_connector``), opened at start-up."""
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _compiled: dict[str, jinja2.Template] = field(default_factory=dict)

    def template(self, name: str) -> jinja2.Template:
        """A page template, looked up once (Jinja's own lookup takes a lock and an LRU step)."""
        found = self._compiled.get(name)
        if found is None:
            found = self._compiled[name] = self.templates.get_template(name)
        return found

    def now(self) -> int:
        return int(self.clock())

    @functools.cached_property
    def upstream_connectors(self) -> frozenset[str]:
        """Ids of the connectors that redirect to an upstream IdP (checked once: an
        ``isinstance`` against a runtime-checkable protocol costs ~15 µs a call)."""
        return frozenset(cid for cid, c in self.connectors.items() if isinstance(c, RedirectConnector))

    @property
    def secure_cookies(self) -> bool:
        return urlsplit(self.settings.issuer).scheme == "https"

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.outbox.stop()
        await self.backchannel.stop()
        for api in self.api_connectors.values():
            await api.aclose()
        await self.http.aclose()
        await self.store.close()


async def _refresh_keys(runtime: Runtime) -> None:
    while True:
        await asyncio.sleep(KEY_REFRESH_SECONDS)
        try:
            await runtime.keys.refresh(runtime.store)
        except Exception:
            import logging

            logging.getLogger("gateway").exception("signing-key refresh failed")


def _open_connector(settings: Settings, config: ConnectorConfig, context: ConnectorContext) -> Connector:
    """Open one connector; email_otp connectors without their own policy get the top-level `passcode:`."""
    if isinstance(config, EmailOtpConfig) and config.passcode is None:
        config = config.model_copy(update={"passcode": settings.passcode})
    return config.open(context)


XML_CONNECTOR_TYPES = frozenset({"saml", "wsfed"})


def _xml_security_self_test(settings: Settings) -> None:
    """With a SAML or WS-Fed connector configured, prove before serving that a good assertion
    verifies and a tampered one does not (``idp_connectors.xmlsecurity.selftest``); raises otherwise."""
    if any(str(c.type) in XML_CONNECTOR_TYPES for c in settings.connectors):
        from idp_connectors.xmlsecurity.selftest import self_test  # only then: it loads xmlsec

        self_test()


async def open_runtime(settings: Settings, *, clock: Callable[[], float] = time.time) -> Runtime:
    _xml_security_self_test(settings)
    store = open_store(settings.store)
    box = SecretBox(secret_keys(settings))
    salt = await first_start(settings, store, box, int(clock()))
    keys = await KeyRing.load(store, box, clock=clock)
    outbox = open_outbox(settings.mail)
    await outbox.start()
    secure = urlsplit(settings.issuer).scheme == "https"
    http = httpx.AsyncClient(timeout=httpx.Timeout(10.0), limits=httpx.Limits(max_connections=100))
    backchannel = BackchannelSender(http)
    backchannel.start()
    site = translations_for(settings)  # built once, here: every page and mail looks it up
    context = ConnectorContext(
        state=store,
        mail=outbox,
        keyed_hash=box.keyed_hash,
        tenant_name=site.branding.name,
        http=http,
        clock=clock,
        mail_texts=site.texts,
        mail_language=site.default,
        mail_branding=site.branding.mail,
    )
    connectors = {config.id: _open_connector(settings, config, context) for config in settings.connectors}
    email_otp = next(c for c in connectors.values() if isinstance(c, EmailOtpConnector))
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.auto_reload = False  # templates ship with the code: no stat() of each file per render
    templates.env.globals["tenant_name"] = site.branding.name
    install_languages(templates.env, site)  # `<lang>/<name>`: each page compiled with its language's texts
    runtime = Runtime(
        settings=settings,
        store=store,
        box=box,
        keys=keys,
        outbox=outbox,
        pairwise_salt=salt,
        templates=templates,
        browser=BrowserBinding(box, secure=secure),
        sessions=Sessions(store, secure=secure),
        email_otp=email_otp,
        connectors=connectors,
        connector_types={c.id: str(c.type) for c in settings.connectors},
        realm=build_index(settings),
        http=http,
        backchannel=backchannel,
        clock=clock,
        api_connectors=open_api_connectors(settings),
    )
    runtime._tasks.append(asyncio.create_task(_refresh_keys(runtime)))
    return runtime
