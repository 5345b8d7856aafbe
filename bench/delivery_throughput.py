"""Delivery throughput on the embedded stack, beside a bare asyncio loop doing the same POSTs.

    python bench/delivery_throughput.py [--events 20000] [--concurrency 10]

Starts a Temporal dev server (SQLite file, as ``dirhook dev`` does), a dirhook worker
process serving the delivery queue, and a sink process. The events are committed through
the outbox (as a sync pass does), then the dispatchers are woken: deliveries/s runs from
the wake-up to the last arrival. A second phase commits 1,000 events/s for 10 s while
delivery runs and reports commit-to-arrival latency.
The baseline signs and POSTs the same bodies with the same client (aiohttp, via
dirhook's WebhookSender) and concurrency, in a plain asyncio loop. Runs with one endpoint
and with four.

Then two bad days, each beside the happy path's figure of the same run: a receiver that
answers 500 to the first attempt of every event (retried after the default schedule's 5 s),
and a receiver down (connection refused: its process killed) for 60 s mid-delivery, then
back (the endpoint's circuit breaker opens; the endpoint's schedule is shortened to 2, 4,
8 s… so probes come every few seconds instead of at 5 min).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dirhook.config import Settings  # noqa: E402
from dirhook.db.engine import make_engine, make_sessionmaker, migrate  # noqa: E402
from dirhook.db.schema import Delivery, Directory, Endpoint, EventRow, Organization  # noqa: E402
from dirhook.delivery.rules import DeliveryStatus  # noqa: E402
from dirhook.delivery.sender import WebhookSender  # noqa: E402
from dirhook.devstack import temporal_cli  # noqa: E402
from dirhook.outbox import Outbox  # noqa: E402
from dirhook.signing import Signer, generate_secret  # noqa: E402
from dirhook.temporal import dev_server_search_attribute_args, wake_dispatcher  # noqa: E402
from tests.support.delivery_stack import wait_port  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

CHUNK = 500
BENCH_ADMIN_TOKEN = "bench-admin-token-" + "b" * 32  # the API refuses one under 32 characters


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


async def run_dirhook(
    settings: Settings,
    sessions,
    sink: str,
    n_endpoints: int,
    events: int,
    concurrency: int,
    tag: str,
    paced_rate: float | None = None,
) -> dict:
    """Without ``paced_rate``: commit ``events`` first, then time their delivery from the
    dispatchers' wake-up to the last arrival. With it: commit at that steady rate while
    delivery runs, and measure commit-to-arrival latency."""
    from temporalio.client import Client

    with sessions.begin() as s:
        s.add(Organization(id=f"org_{tag}", name=tag))
        s.flush()
        s.add(Directory(id=f"dir_{tag}", organization_id=f"org_{tag}", name=tag, provider="ldap", config={}))
        for i in range(n_endpoints):
            s.add(
                Endpoint(
                    id=f"ep_{tag}_{i}",
                    organization_id=f"org_{tag}",
                    url=f"{sink}/hooks/{tag}_{i}",
                    secret=generate_secret(),
                    max_concurrency=concurrency,
                )
            )
    client = await Client.connect(settings.temporal_address)
    httpx.post(f"{sink}/reset")
    t0 = time.time()

    def commit(n: int) -> None:
        with sessions.begin() as s:
            outbox = Outbox(s, s.get(Directory, f"dir_{tag}"))
            for i in range(n):
                outbox.emit(
                    "user.updated",
                    {"object": "user", "id": f"usr_{i}", "version": 2, "title": "Engineer", "padding": "x" * 700},
                    {"title": "Intern"},
                )
            outbox.flush()

    sent = 0
    chunk = CHUNK if paced_rate is None else max(1, int(paced_rate / 10))
    while sent < events:
        n = min(chunk, events - sent)
        await asyncio.to_thread(commit, n)
        sent += n
        if paced_rate is not None:
            await asyncio.sleep(max(0.0, t0 + sent / paced_rate - time.time()))
            for i in range(n_endpoints):
                await wake_dispatcher(client, settings, f"ep_{tag}_{i}")
    if paced_rate is None:
        t0 = time.time()
        for i in range(n_endpoints):
            await wake_dispatcher(client, settings, f"ep_{tag}_{i}")
    total = events * n_endpoints
    # Poll a count (cheap), and fetch the arrival times once at the end: serializing them
    # on every poll would load the very machine being measured.
    while httpx.get(f"{sink}/count", params={"prefix": tag}, timeout=30).json()["count"] < total:
        await asyncio.sleep(0.2)
    st = httpx.get(f"{sink}/stats", timeout=60).json()
    last = max(max(v) for k, v in st["arrivals"].items() if k.startswith(tag))
    lat = [x for k, v in st["latencies"].items() if k.startswith(tag) for x in v]
    return {"rate": total / (last - t0), "seconds": last - t0, "p50": pct(lat, 0.5), "p99": pct(lat, 0.99)}


async def run_bare(sink: str, n_endpoints: int, events: int, concurrency: int, body: str) -> dict:
    sender = WebhookSender(timeout_seconds=15, allow_private=True)
    secret = generate_secret()
    httpx.post(f"{sink}/reset")

    async def loop(i: int) -> None:
        signer = Signer([secret])
        queue = iter(range(events))

        async def worker() -> None:
            for j in queue:
                r = await sender.post(f"{sink}/hooks/bare_{i}", signer.headers(f"evt_{i}_{j}", body), body)
                assert r.succeeded, r.error

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    t0 = time.time()
    await asyncio.gather(*(loop(i) for i in range(n_endpoints)))
    elapsed = time.time() - t0
    await sender.close()
    return {"rate": events * n_endpoints / elapsed, "seconds": elapsed}


def _setup(sessions, tag: str, url: str, concurrency: int, **endpoint_settings) -> None:
    with sessions.begin() as s:
        s.add(Organization(id=f"org_{tag}", name=tag))
        s.flush()
        s.add(Directory(id=f"dir_{tag}", organization_id=f"org_{tag}", name=tag, provider="ldap", config={}))
        s.add(
            Endpoint(
                id=f"ep_{tag}",
                organization_id=f"org_{tag}",
                url=url,
                secret=generate_secret(),
                max_concurrency=concurrency,
                **endpoint_settings,
            )
        )


def _commit(sessions, tag: str, events: int) -> None:
    for start in range(0, events, CHUNK):
        with sessions.begin() as s:
            outbox = Outbox(s, s.get(Directory, f"dir_{tag}"))
            for i in range(start, min(events, start + CHUNK)):
                outbox.emit(
                    "user.updated",
                    {"object": "user", "id": f"usr_{i}", "version": 2, "title": "Engineer", "padding": "x" * 700},
                    {"title": "Intern"},
                )
            outbox.flush()


def _all_succeeded(sessions, tag: str, events: int) -> bool:
    from sqlalchemy import func, select

    with sessions() as s:
        return (
            s.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.endpoint_id == f"ep_{tag}", Delivery.status == DeliveryStatus.SUCCEEDED)
            )
            == events
        )


async def run_blip(settings: Settings, sessions, sink: str, events: int, concurrency: int) -> dict:
    """500 to every event's first attempt, 200 to its retry."""
    from temporalio.client import Client

    _setup(sessions, "blip", f"{sink}/hooks/blip", concurrency)
    client = await Client.connect(settings.temporal_address)
    await asyncio.to_thread(_commit, sessions, "blip", events)
    t0 = time.time()
    await wake_dispatcher(client, settings, "ep_blip")
    while (c := httpx.get(f"{sink}/count", params={"prefix": "blip"}, timeout=30).json())["unique"] < events:
        await asyncio.sleep(0.2)
    last = max(
        max(v) for k, v in httpx.get(f"{sink}/stats", timeout=60).json()["arrivals"].items() if k.startswith("blip")
    )
    return {
        "seconds": last - t0,
        "rate": events / (last - t0),
        "refused": c["refused"],
        "duplicates": c["count"] - c["unique"],
    }


async def run_outage(settings: Settings, sessions, events: int, concurrency: int, outage: float) -> dict:
    """The receiver's process killed a quarter of the way in, started again ``outage`` s later."""
    from temporalio.client import Client

    port = free_port()
    sink = f"http://127.0.0.1:{port}"

    def start_sink() -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, str(ROOT / "bench" / "sink.py"), str(port)])
        wait_port(port)
        return p

    receiver = start_sink()
    _setup(sessions, "outage", f"{sink}/hooks/outage", concurrency, retry_schedule=[2, 4, 8, 8, 8, 8, 8, 8, 8, 8, 8])
    client = await Client.connect(settings.temporal_address)
    await asyncio.to_thread(_commit, sessions, "outage", events)
    t0 = time.time()
    await wake_dispatcher(client, settings, "ep_outage")
    try:
        while httpx.get(f"{sink}/count", timeout=30).json()["unique"] < events // 4:
            await asyncio.sleep(0.05)
        receiver.kill()
        receiver.wait(10)
        down_at = time.time()
        await asyncio.sleep(outage)
        receiver = start_sink()
        back_at = time.time()
        while not await asyncio.to_thread(_all_succeeded, sessions, "outage", events):
            await asyncio.sleep(0.2)
        arrivals = httpx.get(f"{sink}/stats", timeout=60).json()["arrivals"].get("outage", [])
    finally:
        receiver.kill()
    first, last = min(arrivals), max(arrivals)
    return {
        "after_back": len(arrivals),
        "first_probe_after_back": first - back_at,
        "drain": last - first,
        "drain_rate": len(arrivals) / max(last - first, 1e-3),
        "total": last - t0,
        "down_at": down_at - t0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--paced-rate", type=int, default=1000, help="events/s of the steady-load latency phase")
    parser.add_argument("--failure-events", type=int, default=6000, help="events of each failure scenario")
    parser.add_argument("--outage", type=float, default=60.0, help="seconds the receiver is down")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dirhook-bench-delivery-"))
    ports = {k: free_port() for k in ("temporal", "ui", "http", "metrics", "sink")}
    procs: list[subprocess.Popen] = []
    try:
        procs.append(
            subprocess.Popen(
                [
                    temporal_cli(),
                    "server",
                    "start-dev",
                    "--ip",
                    "127.0.0.1",
                    "--port",
                    str(ports["temporal"]),
                    "--headless",
                    "--http-port",
                    str(ports["http"]),
                    "--metrics-port",
                    str(ports["metrics"]),
                    "--db-filename",
                    str(work / "temporal.db"),
                    "--log-level",
                    "error",
                    *dev_server_search_attribute_args(),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "bench" / "sink.py"), str(ports["sink"])]))
        wait_port(ports["temporal"])
        wait_port(ports["sink"])
        db_url = f"sqlite:///{work / 'dirhook.db'}"
        migrate(db_url)
        settings = Settings(
            data_dir=work,
            database_url=db_url,
            temporal_address=f"127.0.0.1:{ports['temporal']}",
            allow_private_endpoints=True,
            allow_http_endpoints=True,
            admin_token=BENCH_ADMIN_TOKEN,
        )
        env = {
            **os.environ,
            "DIRHOOK_DATA_DIR": str(work),
            "DIRHOOK_DATABASE_URL": db_url,
            "DIRHOOK_TEMPORAL_ADDRESS": settings.temporal_address,
            "DIRHOOK_ALLOW_PRIVATE_ENDPOINTS": "true",
            "DIRHOOK_ALLOW_HTTP_ENDPOINTS": "true",
            "DIRHOOK_ADMIN_TOKEN": BENCH_ADMIN_TOKEN,
            "DIRHOOK_LOG_LEVEL": "ERROR",
        }
        procs.append(subprocess.Popen([sys.executable, "-m", "workers", "--queues", "delivery"], env=env, cwd=ROOT))
        sessions = make_sessionmaker(make_engine(db_url))
        time.sleep(2)  # worker start-up
        sink = f"http://127.0.0.1:{ports['sink']}"
        body = '{"id":"evt_x","type":"user.updated","data":{"padding":"' + "x" * 900 + '"}}'
        print(
            f"\nDelivery benchmark: {args.events} committed events, concurrency {args.concurrency} per endpoint, "
            "Temporal dev server on a SQLite file, worker in its own process\n"
        )
        happy = {}
        for n in (1, 4):
            bare = asyncio.run(run_bare(sink, n, args.events, args.concurrency, body))
            ours = asyncio.run(run_dirhook(settings, sessions, sink, n, args.events, args.concurrency, f"d{n}"))
            happy[n] = ours
            print(
                f"  {n} endpoint(s), {args.events} committed events: dirhook {ours['rate']:5.0f} deliveries/s "
                f"({ours['seconds']:.1f} s), bare asyncio loop {bare['rate']:5.0f}/s ({bare['seconds']:.1f} s), "
                f"ratio {ours['rate'] / bare['rate']:.2f}"
            )
        n_fail = args.failure_events
        blip = asyncio.run(run_blip(settings, sessions, sink, n_fail, args.concurrency))
        happy_seconds = n_fail / happy[1]["rate"]
        print(
            f"  500 to every first attempt, {n_fail} events: all delivered in {blip['seconds']:.1f} s "
            f"({blip['rate']:.0f} deliveries/s; {blip['refused']} first attempts refused, {blip['duplicates']} "
            f"duplicates), happy path at this run's rate {happy_seconds:.1f} s; bound 2 x (5 s first retry wait "
            f"+ happy path) = {2 * (5 + happy_seconds):.1f} s"
        )
        out = asyncio.run(run_outage(settings, sessions, n_fail, args.concurrency, args.outage))
        print(
            f"  receiver down {args.outage:g} s after {out['down_at']:.1f} s, {n_fail} events: first success "
            f"{out['first_probe_after_back']:.1f} s after it was back (the breaker's probe), then the other "
            f"{out['after_back'] - 1} in {out['drain']:.1f} s ({out['drain_rate']:.0f} deliveries/s, happy path "
            f"{happy[1]['rate']:.0f}/s, ratio {out['drain_rate'] / happy[1]['rate']:.2f}); "
            f"{out['total']:.1f} s from wake-up to the last"
        )
        paced = asyncio.run(
            run_dirhook(
                settings, sessions, sink, 1, args.paced_rate * 10, args.concurrency, "paced", paced_rate=args.paced_rate
            )
        )
        print(
            f"  1 endpoint, committed at a steady {args.paced_rate}/s for 10 s: commit-to-arrival "
            f"p50 {paced['p50'] * 1000:.0f} ms, p99 {paced['p99'] * 1000:.0f} ms"
        )
        with sessions() as s:
            from sqlalchemy import func, select

            print(f"\n  ({s.scalar(select(func.count()).select_from(EventRow))} events committed in all)")
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
