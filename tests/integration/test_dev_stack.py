"""`dirhook dev` as a newcomer runs it: comes up, serves, stops cleanly on Ctrl-C, resumes its data."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.dev_process import dev_env, interrupt, start_dev, wait_http
from tests.support.wait import wait_until


@pytest.mark.timeout(300)
def test_dev_comes_up_serves_and_stops_cleanly(tmp_path):
    env, ports = dev_env(tmp_path / "data")
    api = f"http://127.0.0.1:{ports['API_PORT']}"
    log = tmp_path / "dev.log"

    proc = start_dev(env, log)
    try:
        health = wait_http(f"{api}/healthz", 120, proc, log)
        assert health.json() == {"status": "ok", "database": "ok", "temporal": "ok", "database_schema": "ok"}
        ui = wait_http(f"http://127.0.0.1:{ports['TEMPORAL_UI_PORT']}/", 30, proc, log)
        assert "<html" in ui.text.lower()
        token = (tmp_path / "data" / "admin_token").read_text().strip()
        # the banner follows the API's first healthy answer
        banner = wait_until(lambda: "dirhook is running" in (text := log.read_text()) and text, 30, "the banner")
        assert token in banner and api in banner and str(ports["TEMPORAL_UI_PORT"]) in banner, banner
        # Prometheus: the API's, the worker's own, and the Temporal SDK's.
        assert "dirhook_endpoints_disabled" in httpx.get(f"{api}/metrics").text
        worker_metrics = wait_http(f"http://127.0.0.1:{ports['WORKER_METRICS_PORT']}/metrics", 30, proc, log)
        assert "dirhook_delivery_attempts_total" in worker_metrics.text
        sdk = wait_http(f"http://127.0.0.1:{ports['TEMPORAL_SDK_METRICS_PORT']}/metrics", 30, proc, log)
        assert "temporal_" in sdk.text
        headers = {"authorization": f"Bearer {token}"}
        r = httpx.post(f"{api}/v1/endpoints", json={"url": "http://127.0.0.1:9/hook"}, headers=headers)
        assert r.status_code == 201
        endpoint_id = r.json()["id"]
        left = interrupt(proc)
        assert not left, f"child processes left behind: {left}"
        # Worker and API logs are JSON lines, with no secret in them.
        for name in ("worker.log", "api.log"):
            lines = (tmp_path / "data" / "logs" / name).read_text().splitlines()
            assert lines, name
            for line in lines:
                try:
                    assert json.loads(line)["message"]
                except (ValueError, KeyError):
                    raise AssertionError(f"{name}: not a JSON log line: {line!r}") from None
            assert token not in "\n".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()

    # Starting again resumes with the same data and the same token.
    proc = start_dev(env, log)
    try:
        wait_http(f"{api}/healthz", 120, proc, log)
        r = httpx.get(f"{api}/v1/endpoints/{endpoint_id}", headers=headers)
        assert r.status_code == 200
        assert not interrupt(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
