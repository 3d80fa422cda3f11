"""The gateway as SAML 2.0 identity provider for relying-party apps (Web Browser SSO profile).

``request`` checks an AuthnRequest (both bindings, signatures, ACS, replay); ``assertion`` builds
the Response and Assertion with lxml and signs / encrypts them; ``response`` posts them to the
ACS; ``certificates`` makes the signing certificate of each RS256 key in the key store;
``metadata`` publishes them; ``logout`` is single logout; ``routes`` serves metadata and SLO and
``sso`` the sign-on endpoint. The rules are saml-wsfed-security.md section 8.
"""
