"""The ``microsoft`` connector: the ``oidc`` connector preset for Microsoft Entra ID (v2.0 endpoints).

``config`` (``MicrosoftConfig``: authority host, which accounts, the tenant allow-list) and
``connector`` (``MicrosoftConnector``: the multi-tenant ``iss`` computed from each token's
``tid``, the allow-list, and the identity keyed on the home tenant and object id).
"""
