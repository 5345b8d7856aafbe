"""A size limit on every request body, enforced before anything parses it.

FastAPI reads and parses a JSON body before the route's dependencies (authentication among
them) run, so without this an unauthenticated caller could make the API hold any amount of
memory. The limit is checked on ``Content-Length`` and again on what actually arrives (a
chunked body declares no length). Hand-written because Starlette and uvicorn offer no body
limit; it is a few lines of ASGI. SCIM keeps its own limit (``scim_max_body_bytes``,
announced in its ServiceProviderConfig) and answers in SCIM's error format.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, exempt_prefixes: tuple[str, ...] = ()):
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        # Read the body here, up to the limit, and hand the app what was read.
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await self._refuse(send)
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:  # after the body: wait for what the server says next (a disconnect)
                return await receive()
            sent = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        detail: dict[str, Any] = {"detail": f"the request body is over {self.max_bytes} bytes"}
        raw = json.dumps(detail).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(raw)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": raw})
