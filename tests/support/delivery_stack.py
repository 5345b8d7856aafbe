"""A delivery stack whose parts can be killed: a Temporal dev server on a SQLite file (so it
can be stopped and started again with its workflows), a SQLite database, and delivery
workers as separate processes (`python -m workers --queues delivery`, as an operator runs
them). Used by the delivery fault tests and by bench/delivery_throughput.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from dirhook.codec import data_converter
from dirhook.config import Settings
from dirhook.db.engine import make_sessionmaker, migrate, open_database
from dirhook.db.schema import Delivery, DeliveryAttempt, Directory, Endpoint, Organization
from dirhook.devstack import temporal_cli
from dirhook.outbox import Outbox
from dirhook.signing import generate_secret
from dirhook.temporal import dev_server_search_attribute_args, register_search_attributes, wake_dispatcher
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
ENCRYPTION_KEY = "q3NxlMSd0UeCmbS1ZUs3KZp8yXo0f2pVwcPp3Ahb0nM="  # 32 bytes, base64; tests only


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open within {timeout}s")


class DeliveryStack:
    def __init__(self, work: Path, task_queue: str = "faults", sweep_seconds: float = 60.0):
        self.work = work
        self.temporal_port = free_port()
        self.db_url = f"sqlite:///{work / 'dirhook.db'}"
        self.settings = Settings(
            data_dir=work,
            database_url=self.db_url,
            admin_token="delivery-stack-token-0123456789abcdef",
            temporal_address=f"127.0.0.1:{self.temporal_port}",
            task_queue=task_queue,
            allow_private_endpoints=True,
            allow_http_endpoints=True,
            encryption_keys={"k1": ENCRYPTION_KEY},
            delivery_sweep_seconds=sweep_seconds,
        )
        self.temporal: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.client = None
        migrate(self.db_url)
        self.engine = open_database(self.settings)
        self.sessions = make_sessionmaker(self.engine)
        with self.sessions.begin() as s:
            s.add(Organization(id="org_f", name="faults"))

    # -- processes ---------------------------------------------------------------------------
    def start_temporal(self) -> None:
        http_port, metrics_port = free_port(), free_port()
        self.temporal = subprocess.Popen(
            [
                temporal_cli(),
                "server",
                "start-dev",
                "--ip",
                "127.0.0.1",
                "--port",
                str(self.temporal_port),
                "--headless",
                "--http-port",
                str(http_port),
                "--metrics-port",
                str(metrics_port),
                "--db-filename",
                str(self.work / "temporal.db"),
                "--log-level",
                "error",
                *dev_server_search_attribute_args(),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.temporal_port)

    def stop_temporal(self) -> None:
        """SIGKILL, as a crashed or rebooted host would stop it."""
        assert self.temporal is not None
        self.temporal.kill()
        self.temporal.wait(30)
        self.temporal = None

    async def connect(self) -> None:
        from temporalio.client import Client

        self.client = await Client.connect(self.settings.temporal_address, data_converter=data_converter(self.settings))
        await register_search_attributes(self.client, "default")

    def start_worker(self, log_level: str = "WARNING") -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIRHOOK_")}
        env.update(
            {
                "DIRHOOK_DATA_DIR": str(self.work),
                "DIRHOOK_DATABASE_URL": self.db_url,
                "DIRHOOK_TEMPORAL_ADDRESS": self.settings.temporal_address,
                "DIRHOOK_TASK_QUEUE": self.settings.task_queue,
                "DIRHOOK_ALLOW_PRIVATE_ENDPOINTS": "true",
                "DIRHOOK_ALLOW_HTTP_ENDPOINTS": "true",
                "DIRHOOK_ADMIN_TOKEN": self.settings.resolved_admin_token,
                "DIRHOOK_LOG_LEVEL": log_level,
                "DIRHOOK_ENCRYPTION_KEYS": json.dumps({"k1": ENCRYPTION_KEY}),
                "DIRHOOK_DELIVERY_SWEEP_SECONDS": str(self.settings.delivery_sweep_seconds),
            }
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers", "--queues", "delivery"],
            env=env,
            cwd=ROOT,
            stdout=open(self.work / "worker.log", "ab"),
            stderr=subprocess.STDOUT,
        )
        self.workers.append(proc)
        return proc

    def kill_worker(self, proc: subprocess.Popen) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        self.workers.remove(proc)

    def close(self) -> None:
        for proc in list(self.workers):
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.temporal is not None:
            self.temporal.terminate()
            try:
                self.temporal.wait(30)
            except subprocess.TimeoutExpired:
                self.temporal.kill()
        self.engine.dispose()

    # -- data --------------------------------------------------------------------------------
    def add_endpoint(self, endpoint_id: str, url: str, **settings) -> str:
        """An endpoint subscribed to a directory of its own (``dir_<endpoint_id>``); returns its secret."""
        secret = generate_secret()
        with self.sessions.begin() as s:
            s.add(
                Directory(
                    id=f"dir_{endpoint_id}", organization_id="org_f", name=endpoint_id, provider="ldap", config={}
                )
            )
            s.add(
                Endpoint(
                    id=endpoint_id,
                    organization_id="org_f",
                    url=url,
                    secret=secret,
                    directory_ids=[f"dir_{endpoint_id}"],
                    **settings,
                )
            )
        return secret

    def commit(self, endpoint_id: str, n: int, chunk: int = 500) -> None:
        """``n`` events of the endpoint's directory through the outbox, as a sync pass commits them."""
        done = 0
        while done < n:
            size = min(chunk, n - done)
            with self.sessions.begin() as s:
                outbox = Outbox(s, s.get(Directory, f"dir_{endpoint_id}"))
                for i in range(done, done + size):
                    outbox.emit(
                        "user.updated",
                        {"object": "user", "id": f"usr_{i}", "version": 2, "title": "Engineer", "padding": "x" * 500},
                        {"title": "Intern"},
                    )
                outbox.flush()
            done += size

    async def wake(self, endpoint_id: str) -> None:
        await wake_dispatcher(self.client, self.settings, endpoint_id)

    def statuses(self, endpoint_id: str) -> Counter:
        with self.sessions() as s:
            return Counter(
                dict(
                    s.execute(
                        select(Delivery.status, func.count())
                        .where(Delivery.endpoint_id == endpoint_id)
                        .group_by(Delivery.status)
                    ).all()
                )
            )

    def ownerless(self, endpoint_id: str) -> int:
        """Deliveries in a state nothing acts on: retrying without a time for the retry."""
        with self.sessions() as s:
            return s.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(
                    Delivery.endpoint_id == endpoint_id,
                    Delivery.status == "retrying",
                    Delivery.next_attempt_at.is_(None),
                )
            )

    def attempts(self, endpoint_id: str) -> dict[str, list[DeliveryAttempt]]:
        with self.sessions() as s:
            rows = s.execute(
                select(Delivery.event_id, DeliveryAttempt)
                .join(DeliveryAttempt, DeliveryAttempt.delivery_id == Delivery.id)
                .where(Delivery.endpoint_id == endpoint_id)
                .order_by(DeliveryAttempt.id)
            ).all()
            out: dict[str, list[DeliveryAttempt]] = {}
            for event_id, attempt in rows:
                s.expunge(attempt)
                out.setdefault(event_id, []).append(attempt)
            return out

    async def workflow_count(self) -> int:
        """Workflow executions of every kind the server has, open or closed."""
        return (await self.client.count_workflows()).count
