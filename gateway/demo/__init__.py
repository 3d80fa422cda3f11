"""The demo relying party at ``/demo`` (switched on by ``demo.enabled``)."""
