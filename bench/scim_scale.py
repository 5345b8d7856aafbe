"""SCIM at identity-provider scale: parallel creations, then listings the way Okta's import
pages through every user; beside a bare scim2-server on its in-memory backend doing the
same work in the same run.

    python bench/scim_scale.py [--users 100000] [--clients 8] [--checkpoints 1000,10000,100000]

Starts `dirhook dev` (Temporal dev server, a worker, the API, SQLite) in a scratch
directory with the SCIM rate limit lifted, a SCIM directory with an endpoint pointing at a
sink process (so delivery runs during the writes), and `scim2-server` (scim2-server's own
command: WSGI, threads, resources in memory) as the reference. For each server: creates
the users with N parallel clients (writes/s); at each checkpoint, pages through every user
with `GET /Users?startIndex=…&count=100` and prints p50/p99 per page. Then the API's peak
RSS (VmHWM). Issue 15's targets: a page at 100,000 users within 2× its time at 1,000;
≥ 200 writes/s with 8 clients while delivery runs; API peak RSS ≤ 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.dev_process import descendants, dev_env, interrupt, start_dev, wait_http  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PAGE = 100


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def user(i: int) -> dict:
    return {
        "schemas": [USER],
        "userName": f"user{i:06d}@scale.example",
        "name": {"givenName": "User", "familyName": f"{i:06d}"},
        "emails": [{"value": f"user{i:06d}@scale.example", "primary": True, "type": "work"}],
        "active": True,
    }


async def create(client: httpx.AsyncClient, start: int, stop: int, clients: int) -> float:
    """Creates users start..stop-1 with ``clients`` parallel workers; returns writes/s."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(start, stop):
        queue.put_nowait(i)

    async def work() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            for _attempt in range(20):
                r = await client.post("/Users", json=user(i))
                if r.status_code != 503:  # busy directory: Retry-After, as an IdP retries
                    break
                await asyncio.sleep(float(r.headers.get("retry-after", "1")))
            assert r.status_code == 201, r.text

    began = time.perf_counter()
    await asyncio.gather(*(work() for _ in range(clients)))
    return (stop - start) / (time.perf_counter() - began)


async def list_all(client: httpx.AsyncClient, expected: int) -> list[float]:
    """Okta's import: startIndex=1, 101, 201… until every user was seen; seconds per page."""
    times, seen, index = [], 0, 1
    while True:
        began = time.perf_counter()
        r = await client.get("/Users", params={"startIndex": index, "count": PAGE})
        times.append(time.perf_counter() - began)
        assert r.status_code == 200, r.text
        page = r.json()
        got = len(page.get("Resources", []))
        seen += got
        index += got
        if got == 0 or index > page["totalResults"]:
            break
    assert seen == expected, (seen, expected)
    return times


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """utime + stime of each process, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, pid in pids.items():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        out[name] = (int(fields[11]) + int(fields[12])) / ticks
    return out


def stack_pids(dev_pid: int) -> dict[str, int]:
    """The dev stack's API, worker and Temporal server processes, by role."""
    found = {}
    for pid in descendants(dev_pid):
        try:
            cmd = b" ".join(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"))
        except OSError:
            continue
        for role, marker in (("api", b"dirhook.cli api"), ("worker", b"-m workers"), ("temporal", b"server start-dev")):
            if marker in cmd:
                found[role] = pid
    return found


async def run(
    name: str, client: httpx.AsyncClient, checkpoints: list[int], clients: int, pids: dict[str, int] | None = None
) -> dict:
    results: dict = {"writes": [], "pages": {}, "cpu": {}}
    made = 0
    for checkpoint in checkpoints:
        before = cpu_seconds(pids or {})
        rate = await create(client, made, checkpoint, clients)
        after = cpu_seconds(pids or {})
        for role in after:
            results["cpu"][role] = results["cpu"].get(role, 0.0) + after[role] - before[role]
        results["writes"].append((made, checkpoint, rate))
        made = checkpoint
        pages = await list_all(client, made)
        results["pages"][made] = pages
        print(
            f"  {name:<14} {made:>7} users: {rate:7.1f} writes/s; list {len(pages)} pages "
            f"p50 {pct(pages, 0.5) * 1000:6.1f} ms, p99 {pct(pages, 0.99) * 1000:6.1f} ms",
            flush=True,
        )
    return results


def rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--checkpoints", default="1000,10000,100000")
    args = parser.parse_args()
    checkpoints = sorted({min(int(c), args.users) for c in args.checkpoints.split(",")} | {args.users})
    with tempfile.TemporaryDirectory() as scratch:
        sink_port, reference_port = free_port(), free_port()
        sink = subprocess.Popen([sys.executable, str(ROOT / "bench" / "sink.py"), str(sink_port)])
        reference = subprocess.Popen(
            [sys.executable, "-m", "scim2_server.testserver.cli", "--port", str(reference_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        env, ports = dev_env(Path(scratch) / "data")
        env |= {"DIRHOOK_SCIM_RATE_LIMIT_PER_SECOND": "100000", "DIRHOOK_SCIM_RATE_LIMIT_BURST": "100000"}
        log = Path(scratch) / "dev.log"
        proc = start_dev(env, log)
        try:
            api = f"http://127.0.0.1:{ports['API_PORT']}"
            await asyncio.to_thread(wait_http, f"{api}/healthz", 120, proc, log)
            token = (Path(scratch) / "data" / "admin_token").read_text().strip()
            async with httpx.AsyncClient(base_url=api, headers={"authorization": f"Bearer {token}"}) as admin:
                d = (await admin.post("/v1/directories", json={"name": "scale", "provider": "scim"})).json()
                r = await admin.post(
                    "/v1/endpoints",
                    json={"url": f"http://127.0.0.1:{sink_port}/hooks/scale", "directory_ids": [d["id"]]},
                )
                assert r.status_code == 201, r.text
            limits = httpx.Limits(max_connections=args.clients * 2)
            headers = {"authorization": f"Bearer {d['scim_token']}", "content-type": "application/scim+json"}
            print(f"{args.users} users, {args.clients} parallel clients, pages of {PAGE}")
            async with httpx.AsyncClient(
                base_url=d["scim_base_url"], headers=headers, timeout=60, limits=limits
            ) as ours_client:
                pids = stack_pids(proc.pid)
                assert "api" in pids, f"no API process under dirhook dev: {pids}"
                ours = await run("dirhook", ours_client, checkpoints, args.clients, pids)
            peak = rss_peak_mb(pids["api"])
            delivered = httpx.get(f"http://127.0.0.1:{sink_port}/count", params={"prefix": "scale"}).json()["count"]
            await asyncio.to_thread(
                wait_http, f"http://127.0.0.1:{reference_port}/v2/ServiceProviderConfig", 30, reference, log
            )
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{reference_port}/v2", headers=headers, timeout=60, limits=limits
            ) as bare_client:
                bare = await run("scim2-server", bare_client, checkpoints, args.clients)
        finally:
            interrupt(proc)
            for p in (sink, reference):
                p.terminate()
                p.wait(timeout=30)
    first, last = checkpoints[0], checkpoints[-1]
    print()
    for label, res in (("dirhook", ours), ("scim2-server (memory)", bare)):
        writes = sum(stop - start for start, stop, _r in res["writes"]) / sum(
            (stop - start) / rate for start, stop, rate in res["writes"]
        )
        p_first, p_last = pct(res["pages"][first], 0.5), pct(res["pages"][last], 0.5)
        print(
            f"{label:<22} writes {writes:7.1f}/s; page p50 at {first}: {p_first * 1000:6.1f} ms, "
            f"at {last}: {p_last * 1000:6.1f} ms ({p_last / p_first:.2f}x)"
        )
    ours_writes = sum(s - a for a, s, _r in ours["writes"]) / sum((s - a) / r for a, s, r in ours["writes"])
    bare_writes = sum(s - a for a, s, _r in bare["writes"]) / sum((s - a) / r for a, s, r in bare["writes"])
    ratio = pct(ours["pages"][last], 0.5) / pct(ours["pages"][first], 0.5)
    print(
        f"ratio dirhook / scim2-server: writes {ours_writes / bare_writes:.2f}x, "
        f"page at {last} {pct(ours['pages'][last], 0.5) / pct(bare['pages'][last], 0.5):.2f}x"
    )
    print(f"webhooks delivered during the run: {delivered}; API peak RSS {peak:.0f} MB")
    made = checkpoints[-1]
    print(
        "CPU per write while creating (ms): "
        + ", ".join(f"{role} {seconds / made * 1000:.2f}" for role, seconds in sorted(ours["cpu"].items()))
    )
    print(
        f"targets: page at {last} within 2x of {first}: {'met' if ratio <= 2 else 'NOT met'} ({ratio:.2f}x); "
        f">= 200 writes/s: {'met' if ours_writes >= 200 else 'NOT met'}; "
        f"RSS <= 300 MB: {'met' if peak <= 300 else 'NOT met'}"
    )


if __name__ == "__main__":
    asyncio.run(main())
