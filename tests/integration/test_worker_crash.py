"""A worker killed (SIGKILL) in the middle of a 20,000-user full sync: after a new worker
starts, the pass completes, writing only what the killed attempt had not committed, and the
receiver gets every user.created exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from contextlib import AsyncExitStack

import pytest
from sqlalchemy import func, select

from dirhook import sync_control
from dirhook.db.schema import User
from dirhook.sync_control import DirectoryRef
from tests.conftest import unique
from tests.support.e2e_helpers import connect_directory
from tests.support.wait import wait_for
from workers import build_workers, close_all

pytestmark = [pytest.mark.parametrize("stack", ["sqlite"], indirect=True)]

N_USERS = 20_000


def stored_users(stack, directory_id: str) -> int:
    with stack.sessions() as s:
        return s.scalar(select(func.count()).select_from(User).where(User.directory_id == directory_id))


async def start_sync_worker(stack, task_queue: str, log_path) -> asyncio.subprocess.Process:
    """`python -m workers --queues sync`, as an operator runs it, on a queue of its own."""
    settings = stack.settings
    env = {
        **os.environ,
        "DIRHOOK_DATABASE_URL": settings.sqlalchemy_url,
        "DIRHOOK_TEMPORAL_ADDRESS": settings.temporal_address,
        "DIRHOOK_TASK_QUEUE": task_queue,
        "DIRHOOK_ENCRYPTION_KEYS": json.dumps({k: v.get_secret_value() for k, v in settings.encryption_keys.items()}),
        "DIRHOOK_DATA_DIR": str(settings.data_dir),
        "DIRHOOK_LDAP_TIMESTAMP_OVERLAP_SECONDS": "0",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers",
        "--queues",
        "sync",
        env=env,
        stdout=open(log_path, "ab"),
        stderr=asyncio.subprocess.STDOUT,
    )


async def _at_least(value, minimum: int) -> bool:
    return await value >= minimum


@pytest.mark.timeout(420)
async def test_sigkill_mid_sync_then_every_user_created_exactly_once(stack, slapd, receiver, tmp_path):
    queue = unique("crash")
    crash = stack.settings.model_copy(update={"task_queue": queue, "sync_heartbeat_timeout_seconds": 5.0})
    conn = await connect_directory(stack, slapd, receiver, N_USERS, 0)
    async with AsyncExitStack() as stack_of_workers:
        # Delivery for this queue runs here, in the test: only the sync worker dies.
        workers, closers = build_workers(stack.client, crash, ["delivery"])
        for w in workers:
            await stack_of_workers.enter_async_context(w)
        stack_of_workers.push_async_callback(close_all, closers)

        log = tmp_path / "worker.log"
        worker = await start_sync_worker(stack, queue, log)
        d = conn.directory
        handle = await sync_control.request_sync(
            stack.client, crash, DirectoryRef(d["id"], d["organization_id"], d["name"], "ldap"), "full"
        )

        async def heartbeated_users() -> int:
            """How many committed users the pass's last heartbeat, as the server holds it, reports."""
            for pending in (await handle.describe()).raw_description.pending_activities:
                if pending.heartbeat_details.payloads:
                    details = await stack.client.data_converter.decode(pending.heartbeat_details.payloads)
                    return details[-1].get("users_read", 0)
            return 0

        await wait_for(lambda: stored_users(stack, conn.id) >= 3000, 120, "the pass to commit 3,000 users")
        await wait_for(lambda: _at_least(heartbeated_users(), 3000), 30, "a heartbeat of 3,000 committed users")

        async def live_progress() -> int:  # the API's live view of the pass: its run's row
            status = (await stack.api.get(f"/v1/directories/{conn.id}/sync")).json()
            return status["state"] == "running" and (status["progress"] or {}).get("users_read", 0)

        await wait_for(lambda: _at_least(live_progress(), 3000), 30, "the API to show the pass's progress")
        worker.kill()  # SIGKILL: no goodbye, no graceful shutdown
        await asyncio.wait_for(worker.wait(), 10)
        killed_at = stored_users(stack, conn.id)
        assert killed_at < N_USERS, "the pass ended before the kill: nothing was tested"

        worker = await start_sync_worker(stack, queue, log)
        try:
            await asyncio.wait_for(handle.result(), 240)
            status = (await stack.api.get(f"/v1/directories/{conn.id}/sync")).json()
            assert status["last_run"]["status"] == "succeeded", status
            assert stored_users(stack, conn.id) == N_USERS
            # The new attempt knew how far the killed one got (its last heartbeat, which may
            # lag the kill by a second), and wrote only what was left.
            counts = status["last_run"]["counts"]
            assert 3000 <= counts["resumed_after_users"] <= killed_at, counts
            assert counts["users_written"] == N_USERS - killed_at, counts
            runs = (await stack.api.get(f"/v1/directories/{conn.id}/sync-runs")).json()
            assert [(r["status"], r["error"]) for r in runs] == [
                ("succeeded", None),
                ("failed", "attempt 1 stopped without finishing; attempt 2 took over"),
            ]
            created = await wait_for(
                lambda: len(conn.route.events("user.created")) >= N_USERS and conn.route.events("user.created"),
                180,
                f"{N_USERS} user.created",
            )
        finally:
            worker.kill()
            await worker.wait()
    by_id = {r.headers["webhook-id"]: r.event for r in conn.route.accepted if r.event["type"] == "user.created"}
    assert len(by_id) == N_USERS  # one webhook-id per user…
    assert len({e["data"]["username"] for e in by_id.values()}) == N_USERS  # …and one user per webhook-id
    assert len(created) >= N_USERS
    print(
        f"killed with {killed_at} of {N_USERS} users committed; "
        f"{len(created) - N_USERS} deliveries repeated (same webhook-id) after the restart"
    )
