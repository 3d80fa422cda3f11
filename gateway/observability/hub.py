"""``Hub``: one app's observability (metrics, route templates, the sign-in log writer).

Made by ``create_app`` with the route table; ``start`` (in the lifespan, once the runtime is open)
wraps the upstream HTTP client and starts the sign-in log writer; ``stop`` writes what is queued.
Settings are read from the runtime each time, so a reloaded configuration applies at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter
from starlette.routing import BaseRoute

from gateway.observability import upstream
from gateway.observability.metrics import Metrics
from gateway.observability.routes import RouteIndex
from gateway.observability.signin_record import signin_entry
from gateway.observability.writer import SignInLogWriter

if TYPE_CHECKING:
    from gateway.runtime import Runtime

NONE = "none"


class Hub:
    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self.metrics = Metrics()
        self.routes = RouteIndex(routes)
        self.runtime: Runtime | None = None
        self.writer: SignInLogWriter | None = None
        # labelled children by (family, label values): ``Counter.labels`` checks and converts its
        # arguments and takes a lock on every call, several times the cost of the ``inc``
        self._children: dict[tuple[Counter, tuple[str, ...]], Counter] = {}

    def start(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        upstream.install(
            runtime.http, self.metrics, upstream.connector_hosts(settings.connectors), runtime.connectors
        )
        days = settings.observability.signin_log_days
        if days > 0:
            self.writer = SignInLogWriter(runtime.store, days * 86400, self.metrics.signin_log_dropped)
            self.writer.start()

    async def stop(self) -> None:
        if self.writer is not None:
            await self.writer.stop()

    def _count(self, family: Counter, *labels: str) -> None:
        """``family.labels(*labels).inc()``, the child looked up once per label values."""
        key = (family, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*labels)
        child.inc()

    def signin(self, record: dict[str, Any]) -> None:
        """One sign-in audit record: its counters, and its sign-in log entry queued."""
        app_id = record.get("app")
        m = self.metrics
        self._count(m.signins, app_id or NONE, record.get("connector") or NONE, record.get("result") or NONE)
        self._count(m.policy, "conditional_access", record.get("conditionalAccessStatus") or NONE)
        for decision in record.get("decisions") or ():
            if decision.get("step") == "cross_tenant_access":
                self._count(m.policy, "cross_tenant_access", decision.get("outcome") or NONE)
        if self.writer is not None and self.runtime is not None:
            app = self.runtime.settings.application(app_id) if app_id else None
            self.writer.submit(signin_entry(record, app.name if app is not None else None))

    def tokens(self, app_id: str, kinds: Sequence[str]) -> None:
        for kind in kinds:
            self._count(self.metrics.tokens, app_id, kind)
