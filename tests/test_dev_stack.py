"""`dirhook dev` as a newcomer runs it: comes up, serves, stops cleanly on Ctrl-C, resumes its data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.ports import free_port

pytestmark = pytest.mark.slow


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait_http(url: str, timeout: float, proc: subprocess.Popen, log: Path) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"dirhook dev exited with {proc.returncode}:\n{log.read_text()}")
        try:
            r = httpx.get(url, timeout=2)
            if r.status_code == 200:
                return r
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer within {timeout}s:\n{log.read_text()}")
        time.sleep(0.2)


def _start(env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dirhook.cli", "dev"], env=env, stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _interrupt(proc: subprocess.Popen) -> set[int]:
    children = _descendants(proc.pid)
    assert len(children) >= 3, children  # temporal, worker, api
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=90) == 0
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    return {p for p in children if _alive(p)}


@pytest.mark.timeout(300)
def test_dev_comes_up_serves_and_stops_cleanly(tmp_path):
    ports = {k: free_port() for k in ("API_PORT", "TEMPORAL_PORT", "TEMPORAL_UI_PORT", "TEMPORAL_HTTP_PORT",
                                      "TEMPORAL_METRICS_PORT", "WORKER_METRICS_PORT", "TEMPORAL_SDK_METRICS_PORT")}
    env = {**os.environ, "DIRHOOK_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200",
           **{f"DIRHOOK_{k}": str(v) for k, v in ports.items()}}
    env.pop("DIRHOOK_ADMIN_TOKEN", None)
    env.pop("DIRHOOK_DATABASE_URL", None)
    api = f"http://127.0.0.1:{ports['API_PORT']}"
    log = tmp_path / "dev.log"

    proc = _start(env, log)
    try:
        health = _wait_http(f"{api}/healthz", 120, proc, log)
        assert health.json() == {"status": "ok", "database": "ok", "temporal": "ok"}
        ui = _wait_http(f"http://127.0.0.1:{ports['TEMPORAL_UI_PORT']}/", 30, proc, log)
        assert "<html" in ui.text.lower()
        token = (tmp_path / "data" / "admin_token").read_text().strip()
        deadline = time.monotonic() + 30  # the banner follows the API's first healthy answer
        while "dirhook is running" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        banner = log.read_text()
        assert token in banner and api in banner and str(ports["TEMPORAL_UI_PORT"]) in banner, banner
        # Prometheus: the API's, the worker's own, and the Temporal SDK's.
        assert "dirhook_endpoints_disabled" in httpx.get(f"{api}/metrics").text
        worker_metrics = _wait_http(f"http://127.0.0.1:{ports['WORKER_METRICS_PORT']}/metrics", 30, proc, log)
        assert "dirhook_delivery_attempts_total" in worker_metrics.text
        sdk = _wait_http(f"http://127.0.0.1:{ports['TEMPORAL_SDK_METRICS_PORT']}/metrics", 30, proc, log)
        assert "temporal_" in sdk.text
        headers = {"authorization": f"Bearer {token}"}
        r = httpx.post(f"{api}/v1/endpoints", json={"url": "http://127.0.0.1:9/hook"}, headers=headers)
        assert r.status_code == 201
        endpoint_id = r.json()["id"]
        left = _interrupt(proc)
        assert not left, f"child processes left behind: {left}"
        # Worker and API logs are JSON lines, with no secret in them.
        import json

        for name in ("worker.log", "api.log"):
            lines = (tmp_path / "data" / "logs" / name).read_text().splitlines()
            assert lines and all(json.loads(line)["message"] for line in lines), name
            assert token not in "\n".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()

    # Starting again resumes with the same data and the same token.
    proc = _start(env, log)
    try:
        _wait_http(f"{api}/healthz", 120, proc, log)
        r = httpx.get(f"{api}/v1/endpoints/{endpoint_id}", headers=headers)
        assert r.status_code == 200
        assert not _interrupt(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
