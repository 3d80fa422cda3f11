"""The browser part of a sign-in: transaction, browser binding and CSRF, SSO session, pages.

A sign-in is a few small steps over a stored ``SignIn`` transaction, so any replica can
serve the next request. Upstream protocols are ``idp_connectors``'; decisions are
``gateway.policy``'s; codes and tokens are ``gateway.oidc``'s.
"""
