"""The ``saml`` connector: the gateway as a SAML 2.0 service provider of one partner IdP.

``config`` (the YAML model and the SP key pair), ``metadata`` (the IdP's metadata from a file
or URL: parsed through the XML gate, cached, refreshed, every signing certificate kept for
rollover), ``authn_request`` (the AuthnRequest on the HTTP-Redirect binding, optionally
signed), ``response`` (the ACS answer: every binding, signature and freshness check, read only
from the verified element), ``assertion`` (the checks on the verified assertion), ``identity``
(attributes to ``UpstreamIdentity``), ``sp_metadata`` (what we publish about ourselves),
``xmltime`` (SAML instants) and ``connector`` (begin/complete and the list of reason
codes). XML security itself (the gate, signatures, decryption) is ``idp_connectors.xmlsecurity``.
It reports what the IdP asserted; whether to trust it is ``gateway.policy``'s call.
"""
