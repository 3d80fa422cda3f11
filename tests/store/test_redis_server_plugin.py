"""The ``redis_url`` plugin fails the run, never skips, when ``redis-server`` is missing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_pytest(directory: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": str(directory), "PYTHONPATH": str(REPO), "PYTEST_ADDOPTS": ""}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.support.redis_server",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
        ],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_missing_redis_server_fails_with_instructions(tmp_path: Path) -> None:
    (tmp_path / "test_needs_redis.py").write_text("def test_uses_redis(redis_url):\n    assert redis_url\n")
    result = await asyncio.to_thread(run_pytest, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "redis-server is not on PATH" in output
    assert "make test" in output and "apt-get install redis-server" in output
    assert "1 error" in output and "skipped" not in output
