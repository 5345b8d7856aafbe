"""A locked database must not freeze the API: routes do their database work off the event
loop, so while one request waits for SQLite's lock (30 s busy timeout) every other request
that needs no database answers at once."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import httpx
import pytest

from dirhook.api.app import create_app
from tests.support.e2e_helpers import scratch_directory

SQLITE_ONLY = pytest.mark.parametrize("stack", ["sqlite"], indirect=True)


@SQLITE_ONLY
@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    "method, path, body",
    [
        # A service route (the directory service's worker thread)…
        ("PATCH", "/v1/directories/{d}", {"name": "renamed while locked"}),
        # …and a plain route (FastAPI's thread pool) that goes back to the loop to wake the dispatcher.
        ("POST", "/v1/endpoints/{e}/recover", {"since": "2026-01-01T00:00:00Z"}),
    ],
)
async def test_a_write_waiting_for_the_lock_does_not_hold_other_requests(stack, method, path, body):
    d = await scratch_directory(stack)
    e = (await stack.api.post("/v1/endpoints", json={"url": "http://127.0.0.1:9/x", "directory_ids": [d["id"]]})).json()
    # The app in this test's own event loop (ASGI transport): a blocking call on the loop
    # would hold the test's other request too.
    app = create_app(stack.settings)
    auth = {"authorization": f"Bearer {stack.settings.resolved_admin_token}"}
    lock = sqlite3.connect(stack.settings.sqlalchemy_url.removeprefix("sqlite:///"), timeout=10)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://dirhook", headers=auth, timeout=60
    ) as api:
        lock.execute("BEGIN IMMEDIATE")  # another writer holds the database
        try:
            write = asyncio.create_task(api.request(method, path.format(d=d["id"], e=e["id"]), json=body))
            # For two seconds, while the write waits for the lock, requests without database
            # work keep answering at once (a write blocking the loop would hold them all).
            slowest, deadline = 0.0, time.monotonic() + 2
            while time.monotonic() < deadline:
                started = time.monotonic()
                docs = await asyncio.wait_for(api.get("/openapi.json"), 5)
                assert docs.status_code == 200
                slowest = max(slowest, time.monotonic() - started)
            assert slowest < 1, f"a request without database work waited {slowest:.1f} s behind a locked write"
            assert not write.done()  # it still waits: the lock is still held
        finally:
            lock.rollback()
            lock.close()
        answer = await asyncio.wait_for(write, 30)
    assert answer.status_code == 200, answer.text
