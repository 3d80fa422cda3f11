"""The admin API under ``/v1.0/`` (Microsoft Graph names and error shape).

``routes.ROUTES`` is mounted by ``gateway.app``. Modules: ``errors`` (Graph-shaped errors and the
endpoint wrapper), ``caller`` (who calls: bearer tokens of this gateway), ``body`` (reading a JSON
body safely), ``models`` (request and response models), ``invitations`` and ``me`` (endpoints),
``graph`` (Graph views of stored objects), ``openapi`` (the OpenAPI document).
"""
