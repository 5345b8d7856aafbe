"""A webhook sink for benchmarks, run as its own process so it does not share a GIL with
what is measured. Answers 200, records arrival time minus the event's timestamp. Routes
whose name starts with ``blip`` answer 500 to the first request of each webhook-id (a
deploy, a 502 blip) and 200 to the next."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime

from aiohttp import web

arrivals: dict[str, list[float]] = {}
latencies: dict[str, list[float]] = {}
refused: dict[str, int] = {}
refused_ids: set[str] = set()
ids: dict[str, set[str]] = {}


async def hook(request: web.Request) -> web.Response:
    body = await request.read()
    now = time.time()
    name = request.match_info["name"]
    webhook_id = request.headers.get("webhook-id", "")
    seen = ids.setdefault(name, set())
    if name.startswith("blip") and webhook_id not in seen and webhook_id not in refused_ids:
        refused_ids.add(webhook_id)
        refused[name] = refused.get(name, 0) + 1
        return web.Response(status=500, text="blip")
    seen.add(webhook_id)
    arrivals.setdefault(name, []).append(now)
    try:
        ts = json.loads(body)["timestamp"]
        latencies.setdefault(name, []).append(now - datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp())
    except (ValueError, KeyError):
        pass
    return web.Response(text="ok")


async def stats(request: web.Request) -> web.Response:
    return web.json_response({"arrivals": arrivals, "latencies": latencies})


async def count(request: web.Request) -> web.Response:
    prefix = request.query.get("prefix", "")
    return web.json_response(
        {
            "count": sum(len(v) for k, v in arrivals.items() if k.startswith(prefix)),
            "unique": sum(len(v) for k, v in ids.items() if k.startswith(prefix)),
            "refused": sum(v for k, v in refused.items() if k.startswith(prefix)),
        }
    )


async def reset(request: web.Request) -> web.Response:
    arrivals.clear()
    latencies.clear()
    refused.clear()
    refused_ids.clear()
    ids.clear()
    return web.json_response({})


def main() -> None:
    app = web.Application()
    app.router.add_post("/hooks/{name}", hook)
    app.router.add_get("/stats", stats)
    app.router.add_get("/count", count)
    app.router.add_post("/reset", reset)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
