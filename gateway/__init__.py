"""The federation gateway service: everything but upstream protocols.

It owns configuration, storage, keys and token minting, the OpenID Provider, the sign-in
journey, the directory, mail and the CLI. Upstream IdP protocols live in ``idp_connectors``.
"""
