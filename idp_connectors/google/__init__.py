"""The ``google`` connector: the ``oidc`` connector preset for Google (accounts.google.com).

``config`` (``GoogleConfig``, the YAML entry) and ``connector`` (``GoogleConnector``, an
``OidcConnector`` with Google's issuer spellings, the hosted-domain restriction and the
verified-email requirement). Routing of gmail.com / googlemail.com addresses here is home-realm
discovery's job in the gateway, not this package's.
"""
