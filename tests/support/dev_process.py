"""`dirhook dev` as a child process, for the tests that start the embedded stack."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.ports import free_port

DEV_PORTS = (
    "API_PORT",
    "TEMPORAL_PORT",
    "TEMPORAL_UI_PORT",
    "TEMPORAL_HTTP_PORT",
    "TEMPORAL_METRICS_PORT",
    "WORKER_METRICS_PORT",
    "TEMPORAL_SDK_METRICS_PORT",
)


def dev_env(data_dir: Path) -> tuple[dict[str, str], dict[str, int]]:
    """A fresh data directory and free ports, none of the caller's DIRHOOK_* settings."""
    ports = {k: free_port() for k in DEV_PORTS}
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIRHOOK_")}
    env.update(
        {"DIRHOOK_DATA_DIR": str(data_dir), "COLUMNS": "200", **{f"DIRHOOK_{k}": str(v) for k, v in ports.items()}}
    )
    return env, ports


def descendants(pid: int) -> set[int]:
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


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_http(url: str, timeout: float, proc: subprocess.Popen, log: Path) -> httpx.Response:
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


def start_dev(env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dirhook.cli", "dev"],
        env=env,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def interrupt(proc: subprocess.Popen) -> set[int]:
    children = descendants(proc.pid)
    assert len(children) >= 3, children  # temporal, worker, api
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=90) == 0
    deadline = time.monotonic() + 10
    while any(alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    return {p for p in children if alive(p)}
