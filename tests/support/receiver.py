"""A real HTTP webhook receiver for tests: verifies every request with ``standardwebhooks``
and ``svix``, records what arrived, and fails on demand."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from standardwebhooks.webhooks import Webhook as StdWebhook
from svix.webhooks import Webhook as SvixWebhook

from tests.support.ports import free_port


@dataclass
class Received:
    headers: dict[str, str]
    body: str
    event: dict
    status: int
    at: float = field(default_factory=time.monotonic)


@dataclass
class Route:
    secret: str
    # (event, attempt number for this webhook-id) -> HTTP status, or (status, headers), to answer
    respond: Callable[[dict, int], int | tuple[int, dict]] = lambda _event, _attempt: 200
    accepted: list[Received] = field(default_factory=list)
    refused: list[Received] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    # False: record requests without checking signatures (the test checks them itself).
    verify: bool = True
    raw: list[Received] = field(default_factory=list)
    # Headers a request must carry (an API key), else 401 (recorded in ``unauthorized``).
    require_headers: dict[str, str] = field(default_factory=dict)
    unauthorized: list[Received] = field(default_factory=list)

    def events(self, type_: str | None = None) -> list[dict]:
        """Accepted events, deduplicated by webhook-id (as a receiver must)."""
        seen, out = set(), []
        for r in self.accepted:
            if r.headers["webhook-id"] in seen:
                continue
            seen.add(r.headers["webhook-id"])
            if type_ is None or r.event["type"] == type_:
                out.append(r.event)
        return out


class Receiver:
    """Plain HTTP, or HTTPS with ``ssl_context`` (which may require a client certificate:
    the subject of the one presented is in ``Received.headers["x-test-client-subject"]``)."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None):
        self.port = free_port()
        self.routes: dict[str, Route] = {}
        self._runner: web.AppRunner | None = None
        self.ssl_context = ssl_context

    def url(self, name: str) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}/hooks/{name}"

    def route(
        self, name: str, secret: str, respond: Callable[[dict, int], int] | None = None, verify: bool = True
    ) -> Route:
        r = Route(secret=secret, verify=verify)
        if respond:
            r.respond = respond
        self.routes[name] = r
        return r

    async def _handle(self, request: web.Request) -> web.Response:
        route = self.routes.get(request.match_info["name"])
        if route is None:
            return web.Response(status=404)
        body = await request.text()
        headers = {k.lower(): v for k, v in request.headers.items()}
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        if peer:
            headers["x-test-client-subject"] = ",".join(f"{k}={v}" for rdn in peer["subject"] for k, v in rdn)
        if any(headers.get(k.lower()) != v for k, v in route.require_headers.items()):
            route.unauthorized.append(Received(headers, body, {}, 401))
            return web.Response(status=401, text="missing or wrong API key")
        if route.verify:
            try:
                StdWebhook(route.secret).verify(body, headers)
                SvixWebhook(route.secret).verify(body, headers)
            except Exception as exc:  # either library refusing is a test failure, recorded
                route.invalid.append(f"{type(exc).__name__}: {exc}")
                return web.Response(status=400, text="bad signature")
        event = json.loads(body)
        route.raw.append(Received(headers, body, event, 0))
        wid = headers["webhook-id"]
        route.attempts[wid] = route.attempts.get(wid, 0) + 1
        answer = route.respond(event, route.attempts[wid])
        status, extra_headers = answer if isinstance(answer, tuple) else (answer, {})
        received = Received(headers, body, event, status)
        (route.accepted if 200 <= status < 300 else route.refused).append(received)
        return web.Response(status=status, text="ok" if status < 300 else "receiver says no", headers=extra_headers)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/{name}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.ssl_context).start()

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
