"""Self-service sign-up through user flows (b2b-concepts §7).

``attributes`` (pure): the attribute page's fields, server-side validation of what the user typed and
of what an API connector returns, and the request an API connector receives. ``api_connector``: the
HTTP client for the reference's API connector contract (Basic or mutual-TLS authentication, timeout
and one retry, every unexpected reply a failure with a reference code). ``flow``: the sign-up steps
between the identity provider and the new guest — ``post_federation_signup``, the attribute page,
``post_attribute_collection``, then the user with ``creationType: SelfServiceSignUp``. ``pages``: the
attribute page's routes. Connectors run during sign-up only, never at sign-in.
"""
