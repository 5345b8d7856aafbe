"""SCIM write to signed webhook, on the embedded stack; beside Temporal's own start-to-activity
latency measured in the same run.

    python bench/scim_latency.py [--writes 500]

Starts `dirhook dev` (Temporal dev server on a SQLite file, a worker, the API) in a scratch
directory, a receiver in this process that verifies every signature (standardwebhooks),
a SCIM directory and an endpoint. Then sends the writes one after the other, as an IdP
does (half creations, half PATCHes of a title), and measures for each the time from
sending the SCIM request to the matching webhook's arrival. The baseline starts a
workflow on the same Temporal server and measures the time until its first activity runs
(a worker in this process, nothing else in the path). Issue 3's target: p50 ≤ 100 ms,
p99 ≤ 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
from aiohttp import web
from standardwebhooks.webhooks import Webhook
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.dev_process import dev_env, interrupt, start_dev, wait_http  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


# -- the baseline: a bare workflow whose first activity notes when it starts ------------------
STARTED: dict[str, float] = {}


@activity.defn
async def note_start(key: str) -> None:
    STARTED[key] = time.perf_counter()


@workflow.defn
class BareWorkflow:
    @workflow.run
    async def run(self, key: str) -> None:
        await workflow.execute_activity(note_start, key, start_to_close_timeout=timedelta(seconds=10))


async def baseline(address: str, n: int) -> list[float]:
    client = await Client.connect(address)
    queue = f"bench-bare-{uuid.uuid4().hex[:6]}"
    latencies = []
    async with Worker(
        client,
        task_queue=queue,
        workflows=[BareWorkflow],
        activities=[note_start],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        for i in range(n):
            key = f"{queue}-{i}"
            t0 = time.perf_counter()
            await client.execute_workflow(BareWorkflow.run, key, id=key, task_queue=queue)
            latencies.append(STARTED[key] - t0)
    return latencies


# -- dirhook: SCIM request → signed webhook ---------------------------------------------------
class Receiver:
    def __init__(self):
        self.arrived: dict[tuple[str, str], float] = {}
        self.waiters: dict[tuple[str, str], asyncio.Event] = {}
        self.verifier: Webhook | None = None
        self.port = free_port()

    def expect(self, key: tuple[str, str]) -> asyncio.Event:
        return self.waiters.setdefault(key, asyncio.Event())

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        at = time.perf_counter()
        event = self.verifier.verify(body, dict(request.headers))  # raises on a bad signature
        key = (event["type"], event["data"].get("username") or "")
        self.arrived[key] = at
        self.expect(key).set()
        return web.Response(status=204)

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        return runner


async def scim_writes(api: str, token: str, n: int) -> list[float]:
    receiver = Receiver()
    runner = await receiver.start()
    headers = {"authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(base_url=api, headers=headers, timeout=30) as admin:
            directory = (await admin.post("/v1/directories", json={"name": "bench", "provider": "scim"})).json()
            endpoint = (
                await admin.post(
                    "/v1/endpoints",
                    json={"url": f"http://127.0.0.1:{receiver.port}/hook", "directory_ids": [directory["id"]]},
                )
            ).json()
        receiver.verifier = Webhook(endpoint["secret"])
        latencies = []
        ids: list[str] = []
        async with httpx.AsyncClient(
            base_url=directory["scim_base_url"],
            timeout=30,
            headers={"authorization": f"Bearer {directory['scim_token']}", "content-type": "application/scim+json"},
        ) as scim:
            for i in range(n):
                creating = i < n // 2
                name = f"user{i if creating else i - n // 2:05d}@bench.example"
                key = ("user.created" if creating else "user.updated", name)
                arrived = receiver.expect(key)
                t0 = time.perf_counter()
                if creating:
                    r = await scim.post("/Users", json={"schemas": [USER], "userName": name, "title": "Engineer"})
                    ids.append(r.json()["id"])
                else:
                    r = await scim.patch(
                        f"/Users/{ids[i - n // 2]}",
                        json={
                            "schemas": [PATCH],
                            "Operations": [{"op": "replace", "path": "title", "value": "Principal Engineer"}],
                        },
                    )
                assert r.status_code in (200, 201, 204), r.text
                await asyncio.wait_for(arrived.wait(), 30)
                latencies.append(receiver.arrived[key] - t0)
        return latencies
    finally:
        await runner.cleanup()


def report(what: str, values: list[float]) -> tuple[float, float]:
    p50, p99 = pct(values, 0.50) * 1000, pct(values, 0.99) * 1000
    print(f"{what:<48} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   max {max(values) * 1000:7.1f} ms   (n={len(values)})")
    return p50, p99


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        env, ports = dev_env(Path(scratch) / "data")
        log = Path(scratch) / "dev.log"
        proc = start_dev(env, log)
        try:
            api = f"http://127.0.0.1:{ports['API_PORT']}"
            await asyncio.to_thread(wait_http, f"{api}/healthz", 120, proc, log)
            token = (Path(scratch) / "data" / "admin_token").read_text().strip()
            await scim_writes(api, token, 20)  # warm-up: connections, first imports, dispatcher start
            bare = await baseline(f"127.0.0.1:{ports['TEMPORAL_PORT']}", args.writes)
            ours = await scim_writes(api, token, args.writes)
        finally:
            interrupt(proc)
    print(f"\n{args.writes} sequential writes, embedded stack (Temporal dev server + SQLite), one receiver")
    b50, b99 = report("bare Temporal: start workflow -> activity runs", bare)
    o50, o99 = report("dirhook: SCIM request -> signed webhook arrives", ours)
    print(f"{'ratio (dirhook / bare Temporal)':<48} p50 {o50 / b50:7.2f} x     p99 {o99 / b99:7.2f} x")
    print(
        f"target p50 <= 100 ms: {'met' if o50 <= 100 else 'NOT met'};  p99 <= 300 ms: {'met' if o99 <= 300 else 'NOT met'}"
    )


if __name__ == "__main__":
    asyncio.run(main())
