"""In-process XML security for SAML 2.0 and WS-Federation (SAML 1.1 tokens).

One inbound gate (``gate.parse_inbound``: size cap, no DTD or entities, comments dropped, depth
cap, unique IDs, every ``ds:Signature`` shaped and within the algorithm policy) runs before any
cryptography; ``signature`` verifies and makes enveloped signatures and HTTP-Redirect binding
signatures on the ``xmlsec`` binding with keys from configuration or metadata only;
``encryption`` handles ``EncryptedAssertion``; ``pysaml2_backend`` plugs all of it into pysaml2;
``selftest`` proves at startup that a good assertion verifies and a tampered one does not.

Nothing here imports ``gateway``; the rules are /work/shared/reference/saml-wsfed-security.md.
"""
