"""Facebook Login: OAuth 2.0 code flow with PKCE plus the Graph ``/me`` call (issuer ``facebook.com``).

Facebook serves self-service sign-up only, never invitation redemption
(``FacebookConfig.signup_only``); the gateway enforces that, the connector only reports it.
"""
