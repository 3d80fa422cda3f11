"""Upstream identity-provider connectors: the protocols guests' home IdPs speak.

A connector knows its protocol and nothing else: no policy, no directory, no storage
backend. It receives its own validated config and a small ``ConnectorContext`` (state
with TTL and atomic counters, a mail sender, a keyed hash) and returns an
``UpstreamIdentity`` exactly as the upstream asserted it. Whether any of that is trusted
is decided by ``gateway.policy``. This package never imports ``gateway``.
"""
