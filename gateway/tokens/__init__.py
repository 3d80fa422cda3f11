"""The gateway's own tokens: signing keys (sealed in the store, rotated, published as a JWKS)
and compact JWS/JWT encoding and verification for ID tokens and logout tokens.

It knows nothing about OIDC flows, clients or sessions: callers build the claims and check
``exp``/``aud``; this package only decides which key signs and whether a token is ours.
"""
