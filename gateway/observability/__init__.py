"""Observability: Prometheus metrics, health probes, request ids in logs and the sign-in log.

``hub.Hub`` holds one app's metrics and sign-in log writer; ``middleware.RequestMiddleware`` gives
each request its id (``context``) and counts it; ``events`` is what the rest of the gateway calls
(the audit trail, token minting); ``endpoints`` serves ``/metrics`` and ``/healthz/*``.
"""
