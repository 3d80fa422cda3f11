"""Multiprocess metrics for ``gateway serve --workers N``: the directory workers write their values to.

Set up by the parent before uvicorn starts the workers (``prepare``): ``var/prometheus`` under
the working directory, emptied at every start so that values of a previous run (whose process
ids may come again) are not added in. A single worker needs none: its registry is in memory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(workers: int, directory: Path | None = None) -> Path | None:
    """With more than one worker: create (emptied) the directory, export it in ``ENV`` and return
    it; otherwise unset ``ENV`` and return None."""
    if workers <= 1:
        os.environ.pop(ENV, None)
        return None
    path = (directory or Path.cwd() / "var" / "prometheus").resolve()
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, mode=0o700)
    os.environ[ENV] = str(path)
    return path
