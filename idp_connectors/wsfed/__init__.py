"""The ``wsfed`` connector: the gateway as WS-Federation passive requestor relying party of one STS.

``config`` (the YAML model), ``connector`` (``wsignin1.0`` out, ``wresult`` back, every check,
and the list of error codes), ``token`` (the RSTR envelope and the SAML 1.1 / 2.0 assertion in
it), ``metadata`` (the STS's signing certificates from its federation metadata, refreshed),
``published`` (our RP metadata). XML is parsed once through ``idp_connectors.xmlsecurity``'s
gate and identity is read only from the assertion element its verifier returns. It reports what
the STS asserted; whether to trust it (email linking, MFA claims) is ``gateway.policy``'s call.
"""
