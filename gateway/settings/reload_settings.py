"""Configuration of hot reload: ``reload:`` in ``gateway.yaml``.

``watch`` makes each worker poll the configuration file every ``interval_seconds`` (its size, change
time and inode first; its SHA-256 only when one of them moved) and apply a changed file;
``SIGHUP`` reloads whatever ``watch`` says. How a reload is applied lives in :mod:`gateway.reload`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Reload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    watch: bool = Field(
        True, description="Poll the configuration file and apply it when its content changes."
    )
    interval_seconds: float = Field(
        2.0, gt=0, le=3600, description="Seconds between two looks at the file (when `watch` is true)."
    )
