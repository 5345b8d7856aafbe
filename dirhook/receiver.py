"""A tiny webhook receiver that verifies Standard Webhooks signatures and prints events.

For trying dirhook out (``dirhook receiver``); applications use their own framework and
any Standard Webhooks verifier.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def make_receiver_app(
    secret: str,
    on_event: Callable[[dict[str, Any], dict[str, str]], None],
    on_refusal: Callable[[str, dict[str, str]], None] = lambda _why, _headers: None,
) -> web.Application:
    """``on_refusal`` hears each delivery answered 401 and why (a wrong secret says nothing
    to whoever runs the receiver otherwise)."""
    hook = Webhook(secret)
    seen: set[str] = set()

    async def handle(request: web.Request) -> web.Response:
        body = await request.text()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            event = hook.verify(body, headers)
        except WebhookVerificationError as exc:
            why = f"signature verification failed: {exc}"
            on_refusal(why, headers)
            return web.json_response({"error": why}, status=401)
        # At-least-once delivery: deduplicate by webhook-id, as every receiver should.
        if headers.get("webhook-id") in seen:
            return web.json_response({"duplicate": True})
        seen.add(headers["webhook-id"])
        on_event(event, headers)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    return app


def print_event(event: dict[str, Any], _headers: dict[str, str]) -> None:
    data = event.get("data", {})
    label = data.get("username") or data.get("name") or data.get("id") or ""
    if data.get("object") == "group_membership":
        label = f"{data['user'].get('username')} -> {data['group'].get('name')}"
    print(f"#{event.get('sequence')} {event.get('type'):<26} {label}", flush=True)
    if event.get("previous_attributes"):
        print(f"    previous: {json.dumps(event['previous_attributes'])}", flush=True)


def print_refusal(why: str, headers: dict[str, str]) -> None:
    hint = ""
    if "signature" in why.lower() and "timestamp" not in why.lower():
        hint = (
            " (is --secret the one `dirhook endpoints add` printed? "
            "`dirhook endpoints rotate-secret ID` gives a new one)"
        )
    print(f"refused {headers.get('webhook-id', 'a request without webhook-id')}: {why}{hint}", flush=True)
