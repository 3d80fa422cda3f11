"""The generic ``oidc`` connector: the gateway as an OpenID Connect relying party of one upstream.

``config`` (the YAML model), ``connector`` (begin/complete and the list of error codes),
``metadata`` (discovery and JWKS cache), ``id_token`` (validation), ``claims`` (mapping to
``UpstreamIdentity``), ``fetch`` (bounded back-channel HTTP). It reports what the upstream
asserted; whether to trust it (email linking, MFA claims) is ``gateway.policy``'s call.
"""
