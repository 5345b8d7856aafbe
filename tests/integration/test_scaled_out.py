"""dirhook scaled out on one machine, as the compose file runs it: PostgreSQL, a Temporal
server, two API processes and two worker processes. An IdP pushes to both APIs in parallel
while passes are asked for through both; one writer per directory must hold across them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from dirhook.db.engine import migrate
from tests.conftest import ADMIN_TOKEN, API_CLIENT_LIMITS, TEST_ENCRYPTION_KEY, unique
from tests.integration.test_one_writer import race
from tests.support.ports import free_port
from tests.support.scim_helpers import USER, ScimDirectory
from tests.support.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]
SWEEP_SECONDS = 10.0


def start_api(env: dict, log) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dirhook.cli", "api", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return proc, f"http://127.0.0.1:{port}"


async def answering(base: str) -> None:
    def up() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code in (200, 503)
        except httpx.HTTPError:
            return False

    await wait_for(up, 60, f"{base} to answer")


@pytest_asyncio.fixture(scope="module")
async def replicas(postgres, temporal_env, tmp_path_factory):
    work = tmp_path_factory.mktemp("scaled-out")
    url = postgres.create_database("scaled_out")
    migrate(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIRHOOK_")}
    env.update(
        {
            "DIRHOOK_DATABASE_URL": url,
            "DIRHOOK_DATA_DIR": str(work),
            "DIRHOOK_ADMIN_TOKEN": ADMIN_TOKEN,
            "DIRHOOK_TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
            "DIRHOOK_TASK_QUEUE": unique("scaled-"),
            "DIRHOOK_ALLOW_PRIVATE_ENDPOINTS": "true",
            "DIRHOOK_ALLOW_HTTP_ENDPOINTS": "true",
            "DIRHOOK_ENCRYPTION_KEYS": json.dumps({"test-k1": TEST_ENCRYPTION_KEY}),
            "DIRHOOK_LOG_LEVEL": "WARNING",
            "DIRHOOK_DELIVERY_SWEEP_SECONDS": str(SWEEP_SECONDS),
        }
    )
    procs: list[subprocess.Popen] = []
    apis: list[str] = []
    log = open(work / "processes.log", "ab")
    try:
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "workers"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
                )
            )
        for _ in range(2):
            proc, base = start_api(env, log)
            procs.append(proc)
            apis.append(base)
        for base in apis:
            await answering(base)
        yield apis, env, log
    finally:
        from dirhook.temporal import DELIVERY_SWEEP_SCHEDULE_ID

        # The sweep these workers scheduled on the session's Temporal server goes with them.
        await temporal_env.client.get_schedule_handle(DELIVERY_SWEEP_SCHEDULE_ID).delete()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()


@pytest.mark.timeout(400)
async def test_two_apis_and_two_workers_on_postgresql_keep_one_writer_per_directory(replicas, receiver):
    replicas, _env, _log = replicas
    clients = [
        httpx.AsyncClient(
            base_url=base, timeout=60, limits=API_CLIENT_LIMITS, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        for base in replicas
    ]
    try:
        r = await clients[0].post("/v1/directories", json={"name": unique("replicas-"), "provider": "scim"})
        assert r.status_code == 201, r.text
        d = r.json()
        # The race deprovisions two thirds of its people: within deletion protection's
        # threshold here (tests/integration/test_scim_deletion_guard.py holds them).
        r = await clients[1].patch(
            f"/v1/directories/{d['id']}", json={"deletion_threshold_count": 10_000, "deletion_threshold_percent": 100}
        )
        assert r.status_code == 200, r.text
        name = unique("ep-")
        r = await clients[1].post("/v1/endpoints", json={"url": receiver.url(name), "directory_ids": [d["id"]]})
        assert r.status_code == 201, r.text
        route = receiver.route(name, r.json()["secret"])
        scims = []
        for base in replicas:  # the same directory through each replica
            path = d["scim_base_url"].split("/scim/", 1)[1]
            scims.append(
                ScimDirectory(
                    d,
                    httpx.AsyncClient(
                        base_url=f"{base}/scim/{path}",
                        timeout=60,
                        limits=API_CLIENT_LIMITS,
                        headers={"authorization": f"Bearer {d['scim_token']}", "content-type": "application/scim+json"},
                    ),
                )
            )
        t0 = time.monotonic()
        result = await race(clients, scims, d["id"], route, n=150)
        # Each replica took the directory's lock for its SCIM writes (once per run of queued
        # writes: the lock is handed from turn to turn within a replica, group_commit.py).
        per_replica: list[dict[float, float]] = []
        for c in clients:
            buckets: dict[float, float] = {}
            for family in text_string_to_metric_families((await c.get("/metrics")).text):
                for sample in family.samples:
                    if (
                        sample.name == "dirhook_directory_lock_wait_seconds_bucket"
                        and sample.labels["caller"] == "scim"
                    ):
                        buckets[float(sample.labels["le"])] = sample.value
            per_replica.append(buckets)
        taken = [b.get(float("inf"), 0) for b in per_replica]
        writes = result["n"] + sum(1 for i in range(result["n"]) if i % 3)
        print(
            f"2 APIs + 2 workers on PostgreSQL: {result['n']} users, {writes} SCIM writes in "
            f"{result['seconds']:.1f} s ({writes / result['seconds']:.0f}/s) while {result['passes_asked']} full "
            f"passes and recomputes were asked for; {result['events']} events, one id per person "
            f"({time.monotonic() - t0:.1f} s in all); SCIM lock acquisitions per replica: {taken}"
        )
        assert all(n > 0 for n in taken), taken
        for s in scims:
            await s.client.aclose()
    finally:
        for c in clients:
            await c.aclose()


@pytest.mark.timeout(120)
async def test_a_write_committed_by_an_api_that_dies_before_waking_delivery_is_delivered_by_the_sweep(
    replicas, receiver
):
    bases, env, log = replicas
    async with httpx.AsyncClient(
        base_url=bases[0], timeout=60, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as api:
        d = (await api.post("/v1/directories", json={"name": unique("orphan-"), "provider": "scim"})).json()
        name = unique("ep-")
        r = await api.post("/v1/endpoints", json={"url": receiver.url(name), "directory_ids": [d["id"]]})
        route = receiver.route(name, r.json()["secret"])
    # A replica that cannot reach Temporal: its writes commit, and its wake-ups are lost.
    cut_off, base = start_api({**env, "DIRHOOK_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}, log)
    try:
        await answering(base)
        path = d["scim_base_url"].split("/scim/", 1)[1]
        async with httpx.AsyncClient(
            base_url=f"{base}/scim/{path}",
            timeout=60,
            headers={"authorization": f"Bearer {d['scim_token']}", "content-type": "application/scim+json"},
        ) as scim:
            r = await scim.post("/Users", json={"schemas": [USER], "userName": "orphan@example.com"})
        assert r.status_code == 201, r.text
        committed = time.monotonic()
    finally:
        cut_off.kill()  # and then it dies: nothing in it will ever wake the dispatcher
        cut_off.wait(30)
    created = await wait_for(
        lambda: route.events("user.created"), SWEEP_SECONDS + 5 + 20, "the sweep to deliver the orphaned event"
    )
    assert created[0]["data"]["username"] == "orphan@example.com"
    print(
        f"a write whose API could not wake delivery, then died: delivered "
        f"{max(x.at for x in route.accepted) - committed:.1f} s after its commit (sweep every {SWEEP_SECONDS:g} s)"
    )
