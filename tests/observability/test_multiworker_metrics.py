"""With ``--workers 2`` every worker writes to one multiprocess directory, and /metrics (whichever
worker answers it) adds up the requests of both."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from tests.observability.test_metrics_health_request_id import sample
from tests.support.live_server import live_server


def test_two_workers_report_one_sum(tmp_path: Path) -> None:
    with live_server(tmp_path / "run", workers=2) as server:
        directory = tmp_path / "run" / "var" / "prometheus"
        with httpx.Client(base_url=server.base_url) as client:
            first = client.get("/metrics").text
            before = sample(first, "gateway_http_requests_total", route="/healthz/live", status="200") or 0.0
            for _ in range(40):  # new connections: the kernel spreads them over both workers
                httpx.get(f"{server.base_url}/healthz/live", headers={"Connection": "close"})
            texts = [client.get("/metrics").text for _ in range(4)]
        pids = {name for name in os.listdir(directory) if name.endswith(".db")}
    for text in texts:
        assert sample(text, "gateway_http_requests_total", route="/healthz/live", status="200") == before + 40
    assert len({name.rsplit("_", 1)[-1] for name in pids}) == 2  # files of two worker processes
