"""The assembled service for one process: settings, store, secrets, keys, mail and connectors.

``open_runtime`` runs in the app's lifespan (once per worker); ``close`` releases it. The
first-start work (schema, dev secret, first keys) is ``gateway.bootstrap``'s and is done
before workers fork; here it is repeated idempotently so tests and single processes work.

What derives from the YAML (settings, connectors, realm index, API connector clients, templates and
translations, the outbox) is one immutable :class:`Configured` generation held by
``Runtime.latest``; a reload (``gateway.reload``) builds the next one with ``configure`` and swaps
it in with ``Runtime.install``, one assignment. ``Runtime.pin`` (done per HTTP request by
``gateway.observability.middleware``; ``Runtime.pinned()`` elsewhere) makes every ``rt.settings`` /
``rt.connectors`` / ... read of that request see the generation it started with, across its awaits.
What cannot change while running (store, secrets, signing keys, the issuer's scheme) is held by
``Runtime`` itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import jinja2
from starlette.templating import Jinja2Templates

from gateway.i18n.templates import install as install_languages
from gateway.i18n.translations import Translations, translations_for
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


@dataclass(frozen=True, eq=False)
class Configured:
    """One generation of the configuration: the settings and everything built from them.

    Never changed once built (the template cache only fills in); ``generation`` counts from 1 in
    each process, ``digest`` is the SHA-256 (hex) of the file it was loaded from, when known.
    """

    settings: Settings
    generation: int
    digest: str | None
    outbox: Outbox
    translations: Translations
    templates: Jinja2Templates
    email_otp: EmailOtpConnector
    connectors: dict[str, Connector]
    connector_types: dict[str, str]
    realm: RealmIndex
    upstream_connectors: frozenset[str]
    """Ids of the connectors that redirect to an upstream IdP (checked once: an ``isinstance``
    against a runtime-checkable protocol costs ~15 µs a call)."""
    api_connectors: dict[str, ApiConnectorClient]
    """The user flows' API connectors by id (``gateway.signup.api_connector``)."""
    compiled: dict[str, jinja2.Template] = field(default_factory=dict, repr=False)

    def template(self, name: str) -> jinja2.Template:
        """A page template, looked up once (Jinja's own lookup takes a lock and an LRU step)."""
        found = self.compiled.get(name)
        if found is None:
            found = self.templates.get_template(name)
            # Its globals as one plain dict: Jinja's ``ChainMap`` of the template's and the environment's
            # is copied key by key in Python into every render's context (both are fixed once built).
            found.globals = dict(found.globals)
            self.compiled[name] = found
        return found


_PINNED: ContextVar[tuple[Runtime, Configured] | None] = ContextVar("gateway_configuration", default=None)


@dataclass
class Runtime:
    store: Store
    box: SecretBox
    keys: KeyRing
    pairwise_salt: bytes
    browser: BrowserBinding
    sessions: Sessions
    http: httpx.AsyncClient
    backchannel: BackchannelSender
    latest: Configured
    """The newest generation: what a request that starts now sees."""
    clock: Callable[[], float] = time.time
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _live: list[Configured] = field(default_factory=list)
    """``latest`` and the replaced generations still in their grace period."""
    _retiring: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def config(self) -> Configured:
        """The generation this request was pinned to (``pinned``), else the newest."""
        pinned = _PINNED.get()
        return pinned[1] if pinned is not None and pinned[0] is self else self.latest

    def pin(self, config: Configured) -> Token[tuple[Runtime, Configured] | None]:
        """From now on this task (and the tasks it starts) reads ``config``; undo with ``unpin``.
        The per-request middleware's form of ``pinned``, without a generator per request."""
        return _PINNED.set((self, config))

    @staticmethod
    def unpin(token: Token[tuple[Runtime, Configured] | None]) -> None:
        _PINNED.reset(token)

    @contextlib.contextmanager
    def pinned(self) -> Iterator[Configured]:
        """Until the block ends, this task (and the tasks it starts) reads the current generation."""
        config = self.config
        token = _PINNED.set((self, config))
        try:
            yield config
        finally:
            _PINNED.reset(token)

    @property
    def settings(self) -> Settings:
        # ``self.config.settings`` written out: read ~55 times a sign-in, a second frame costs more
        # than the rest of the lookup.
        pinned = _PINNED.get()
        return (pinned[1] if pinned is not None and pinned[0] is self else self.latest).settings

    @settings.setter
    def settings(self, value: Settings) -> None:
        """Replace only the settings of the newest generation (tests that edit one model in place;
        a real change goes through ``gateway.reload``, which rebuilds what derives from them)."""
        self.install(dataclasses.replace(self.latest, settings=value))

    @property
    def outbox(self) -> Outbox:
        return self.config.outbox

    @property
    def templates(self) -> Jinja2Templates:
        return self.config.templates

    @property
    def email_otp(self) -> EmailOtpConnector:
        return self.config.email_otp

    @property
    def connectors(self) -> dict[str, Connector]:
        return self.config.connectors

    @property
    def connector_types(self) -> dict[str, str]:
        return self.config.connector_types

    @property
    def realm(self) -> RealmIndex:
        return self.config.realm

    @property
    def upstream_connectors(self) -> frozenset[str]:
        return self.config.upstream_connectors

    @property
    def api_connectors(self) -> dict[str, ApiConnectorClient]:
        return self.config.api_connectors

    def template(self, name: str) -> jinja2.Template:
        return self.config.template(name)

    def now(self) -> int:
        return int(self.clock())

    @property
    def secure_cookies(self) -> bool:
        return urlsplit(self.settings.issuer).scheme == "https"

    def install(self, config: Configured) -> Configured:
        """Make ``config`` the newest generation (one assignment); returns the one it replaces, which
        stays usable until ``retire`` closes it."""
        replaced, self.latest = self.latest, config
        if not any(live is config for live in self._live):
            self._live.append(config)
        return replaced

    def retire(self, config: Configured, grace_seconds: float) -> None:
        """Close what ``config`` alone holds (API connector clients, its outbox) after the grace period
        that lets requests which began with it finish."""

        async def later() -> None:
            await asyncio.sleep(grace_seconds)
            await self._close_generation(config)

        task = asyncio.create_task(later(), name=f"retire-configuration-{config.generation}")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _close_generation(self, config: Configured) -> None:
        if config is self.latest:
            return
        self._live = [live for live in self._live if live is not config]
        if all(live.outbox is not config.outbox for live in self._live):
            await config.outbox.stop()
        in_use = {id(client) for live in self._live for client in live.api_connectors.values()}
        for client in config.api_connectors.values():
            if id(client) not in in_use:
                await client.aclose()

    async def close(self) -> None:
        for task in [*self._tasks, *self._retiring]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for config in [live for live in self._live if live is not self.latest]:
            await self._close_generation(config)
        await self.latest.outbox.stop()
        await self.backchannel.stop()
        for api in self.latest.api_connectors.values():
            await api.aclose()
        await self.http.aclose()
        await self.store.close()


async def _refresh_keys(runtime: Runtime) -> None:
    while True:
        await asyncio.sleep(KEY_REFRESH_SECONDS)
        try:
            await runtime.keys.refresh(runtime.store)
        except Exception:
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


def configure(
    settings: Settings,
    *,
    store: Store,
    box: SecretBox,
    http: httpx.AsyncClient,
    outbox: Outbox,
    clock: Callable[[], float],
    generation: int,
    digest: str | None,
) -> Configured:
    """Build one generation from ``settings`` (synchronous: a reload runs it in a thread). Raises
    ``ValueError`` / ``OSError`` when a connector cannot be opened (e.g. an unreadable certificate
    file) and whatever the XML-security self-test raises; nothing is started or changed then."""
    _xml_security_self_test(settings)
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
    # Every template is ``.html``, for which starlette's ``select_autoescape`` always answers yes: say so
    # once rather than by a call per render; and a plain dict for the templates a page extends (the
    # LRU cache takes a lock and moves entries per look-up; there are only so many templates).
    templates.env.autoescape = True
    templates.env.cache = {}
    templates.env.globals["tenant_name"] = site.branding.name
    install_languages(templates.env, site)  # `<lang>/<name>`: each page compiled with its language's texts
    return Configured(
        settings=settings,
        generation=generation,
        digest=digest,
        outbox=outbox,
        translations=site,
        templates=templates,
        email_otp=email_otp,
        connectors=connectors,
        connector_types={c.id: str(c.type) for c in settings.connectors},
        realm=build_index(settings),
        upstream_connectors=frozenset(
            cid for cid, c in connectors.items() if isinstance(c, RedirectConnector)
        ),
        api_connectors=open_api_connectors(settings),
    )


async def open_runtime(
    settings: Settings, *, clock: Callable[[], float] = time.time, digest: str | None = None
) -> Runtime:
    """The runtime of ``settings`` (generation 1; ``digest``: the SHA-256 of the file they came from)."""
    store = open_store(settings.store)
    box = SecretBox(secret_keys(settings))
    salt = await first_start(settings, store, box, int(clock()))
    keys = await KeyRing.load(store, box, clock=clock)
    http = httpx.AsyncClient(timeout=httpx.Timeout(10.0), limits=httpx.Limits(max_connections=100))
    outbox = open_outbox(settings.mail)
    config = configure(
        settings, store=store, box=box, http=http, outbox=outbox, clock=clock, generation=1, digest=digest
    )
    await outbox.start()
    secure = urlsplit(settings.issuer).scheme == "https"
    backchannel = BackchannelSender(http)
    backchannel.start()
    runtime = Runtime(
        store=store,
        box=box,
        keys=keys,
        pairwise_salt=salt,
        browser=BrowserBinding(box, secure=secure),
        sessions=Sessions(store, secure=secure),
        http=http,
        backchannel=backchannel,
        latest=config,
        clock=clock,
    )
    runtime.install(config)
    runtime._tasks.append(asyncio.create_task(_refresh_keys(runtime)))
    return runtime
