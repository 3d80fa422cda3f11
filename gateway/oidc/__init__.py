"""The OpenID Provider that relying-party apps talk to.

Each endpoint is a short list of small checks (after node-oidc-provider); a check raises a
typed ``OAuthError`` and one place per endpoint turns it into the spec's response. Tokens
are minted by ``gateway.tokens``; users come from ``gateway.directory``; the browser part of
a sign-in lives in ``gateway.signin``.
"""
