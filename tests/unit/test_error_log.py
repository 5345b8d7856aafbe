"""The API's 5xx log line (dirhook/api/error_log.py): one per failed request, with method,
path and status, whether the app answered 5xx or raised; none for the others."""

from __future__ import annotations

import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from dirhook.api.error_log import ErrorLog


async def ok(_request):
    return PlainTextResponse("fine")


async def unavailable(_request):
    return PlainTextResponse("later", status_code=503)


async def broken(_request):
    raise RuntimeError("a bug with a secret=hunter2 in it")


@pytest.fixture
def client():
    app = Starlette(routes=[Route("/ok", ok), Route("/busy", unavailable, methods=["POST"]), Route("/broken", broken)])
    app.add_middleware(ErrorLog)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://api", timeout=5)


async def test_each_failed_request_logs_one_line_and_nothing_else(client, caplog):
    caplog.set_level(logging.INFO, logger="dirhook.api")
    async with client:
        assert (await client.get("/ok")).status_code == 200
        assert (await client.post("/busy", content=b"password=x")).status_code == 503
        assert (await client.get("/broken")).status_code == 500
    lines = [r.getMessage() for r in caplog.records if r.name == "dirhook.api"]
    assert lines == ["POST /busy answered 503", "GET /broken answered 500"]
    assert not any("hunter2" in line or "password" in line for line in lines)
