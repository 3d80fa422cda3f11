"""``bench/run.py`` names the interpreter its figures were measured on: the one ``live_server``
starts the gateway with (this process's), by version and by the file it really is, since a venv's
``python`` is a link to the build that decides the figures."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from bench import run


def test_the_interpreter_line_names_the_real_executable_and_version() -> None:
    line = run.interpreter()

    assert line.startswith(f"{platform.python_implementation()} {platform.python_version()} at ")
    named = Path(line.rsplit(" at ", 1)[1])
    assert named == Path(os.path.realpath(sys.executable))
    assert not named.is_symlink()
