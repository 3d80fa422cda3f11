"""The gateway's configuration: typed models of ``gateway.yaml``, loading with placed errors, schema.

``load_settings(path)`` returns a validated :class:`Settings` or raises :class:`ConfigError`, whose
``problems`` each render as ``FILE:LINE:COL: key.path: message``. ``settings_json_schema()`` is
the JSON Schema editors use (``gateway config-schema``).
"""

from gateway.settings.loader import ConfigError, ConfigProblem, load_settings, settings_json_schema
from gateway.settings.models import Settings

__all__ = ["ConfigError", "ConfigProblem", "Settings", "load_settings", "settings_json_schema"]
