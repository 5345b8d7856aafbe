"""Delivery a receiver can trust: 410, recovery, rotation, FIFO, rate limits, payload caps, SSRF."""

from __future__ import annotations

import asyncio
import random
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update
from standardwebhooks.webhooks import Webhook as StdWebhook
from svix.webhooks import Webhook as SvixWebhook

from dirhook.api.app import create_app
from dirhook.db.schema import EndpointSecret
from dirhook.delivery.sender import WebhookSender
from dirhook.signing import Signer
from tests.conftest import ADMIN_TOKEN, unique
from tests.support.e2e_helpers import emit, run_cli, scratch_directory, subscribe
from tests.support.histories import record
from tests.support.wait import wait_for

SQLITE_ONLY = pytest.mark.parametrize("stack", ["sqlite"], indirect=True)


async def deliveries(stack, endpoint_id: str, **params) -> list[dict]:
    r = await stack.api.get(f"/v1/endpoints/{endpoint_id}/deliveries", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    return r.json()["data"]


@SQLITE_ONLY
async def test_410_disables_and_recovery_delivers_every_retained_event_once(stack, receiver):
    directory = await scratch_directory(stack)
    gone = {"on": True}
    endpoint, route = await subscribe(
        stack, receiver, [directory["id"]], respond=lambda _e, _a: 410 if gone["on"] else 200
    )
    started = datetime.now(UTC) - timedelta(seconds=1)
    await emit(stack, directory["id"], 5)

    async def disabled():
        e = (await stack.api.get(f"/v1/endpoints/{endpoint['id']}")).json()
        return e if not e["enabled"] else None

    e = await wait_for(disabled, 30, "the endpoint to be disabled by 410")
    assert "410" in e["disabled_reason"]
    # Operators see it in the Temporal UI: the endpoint's dispatcher says why it waits.
    from temporalio.api.sdk.v1 import WorkflowMetadata

    dispatcher = stack.client.get_workflow_handle(f"dispatch/{endpoint['id']}")

    async def shows_disabled():
        meta = await dispatcher.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        return "endpoint disabled" in meta.current_details and "410" in meta.current_details

    await wait_for(shows_disabled, 30, "the dispatcher to show the endpoint disabled", interval=0.5)
    await emit(stack, directory["id"], 5)  # while disabled: kept, not sent
    held = await wait_for(lambda: deliveries(stack, endpoint["id"], status="skipped"), 30, "held deliveries")
    assert route.accepted == []

    gone["on"] = False
    assert (await stack.api.post(f"/v1/endpoints/{endpoint['id']}/enable")).json()["enabled"] is True
    r = await stack.api.post(f"/v1/endpoints/{endpoint['id']}/recover", json={"since": started.isoformat()})
    assert r.status_code == 200 and r.json()["requeued"] >= len(held)
    await wait_for(lambda: len(route.events()) == 10, 60, "all 10 events at the receiver")

    async def settled():  # every delivery recorded as succeeded: nothing is left to send again
        return len(await deliveries(stack, endpoint["id"], status="succeeded")) == 10

    await wait_for(settled, 30, "all 10 deliveries to be recorded as succeeded")
    ids = [r.headers["webhook-id"] for r in route.accepted]
    assert len(ids) == len(set(ids)) == 10  # each webhook-id accepted exactly once
    changes = (await stack.api.get(f"/v1/endpoints/{endpoint['id']}/state-changes")).json()
    assert [(c["enabled"], "410" in c["reason"]) for c in changes] == [(False, True), (True, False)]


@SQLITE_ONLY
async def test_rotation_signs_with_both_secrets_during_the_window_then_only_the_new(stack, receiver):
    directory = await scratch_directory(stack)
    endpoint, route = await subscribe(stack, receiver, [directory["id"]], verify=False)
    old = endpoint["secret"]
    r = await stack.api.post(f"/v1/endpoints/{endpoint['id']}/rotate-secret", json={"overlap_seconds": 3600})
    assert r.status_code == 200
    new = r.json()["secret"]
    assert new != old and new not in (await stack.api.get(f"/v1/endpoints/{endpoint['id']}")).text
    await emit(stack, directory["id"], 5)
    await wait_for(lambda: len(route.raw) >= 5, 30, "5 requests")
    for req in route.raw:
        for secret in (old, new):
            StdWebhook(secret).verify(req.body, req.headers)
            SvixWebhook(secret).verify(req.body, req.headers)

    # The window ends (moved into the past rather than waited out).
    with stack.sessions.begin() as s:
        s.execute(
            update(EndpointSecret)
            .where(EndpointSecret.endpoint_id == endpoint["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    route.raw.clear()
    await emit(stack, directory["id"], 5)
    await wait_for(lambda: len(route.raw) >= 5, 30, "5 more requests")
    for req in route.raw:
        StdWebhook(new).verify(req.body, req.headers)
        SvixWebhook(new).verify(req.body, req.headers)
        with pytest.raises(Exception, match=r"(?i)signature"):
            StdWebhook(old).verify(req.body, req.headers)
        with pytest.raises(Exception, match=r"(?i)signature"):
            SvixWebhook(old).verify(req.body, req.headers)


@SQLITE_ONLY
async def test_rotation_keeps_at_most_five_old_secrets(stack, receiver):
    directory = await scratch_directory(stack)
    endpoint, route = await subscribe(stack, receiver, [directory["id"]], verify=False)
    secrets = [endpoint["secret"]]
    for _ in range(7):
        secrets.append((await stack.api.post(f"/v1/endpoints/{endpoint['id']}/rotate-secret")).json()["secret"])
    await emit(stack, directory["id"], 1)
    await wait_for(lambda: route.raw, 30, "a request")
    assert len(route.raw[0].headers["webhook-signature"].split(" ")) == 6  # current + 5 old
    StdWebhook(secrets[-1]).verify(route.raw[0].body, route.raw[0].headers)
    StdWebhook(secrets[2]).verify(route.raw[0].body, route.raw[0].headers)
    with pytest.raises(Exception):
        StdWebhook(secrets[1]).verify(route.raw[0].body, route.raw[0].headers)


@SQLITE_ONLY
async def test_fifo_keeps_sequence_order_per_directory_through_failures(stack, receiver):
    dirs = [await scratch_directory(stack) for _ in range(2)]
    rng = random.Random(7)
    flaky = {}

    def respond(event: dict, attempt: int) -> int:
        # about a third of the events fail once or twice before they succeed
        n = flaky.setdefault(event["id"], rng.choice([0, 0, 1, 2]))
        return 503 if attempt <= n else 200

    _endpoint, route = await subscribe(
        stack,
        receiver,
        [d["id"] for d in dirs],
        respond=respond,
        fifo=True,
        retry_schedule=[0.05, 0.05, 0.05, 0.05],
        max_concurrency=4,
    )
    for _ in range(3):
        for d in dirs:
            await emit(stack, d["id"], 20)
    await wait_for(lambda: len(route.events()) == 120, 90, "120 events at the receiver")
    for d in dirs:
        seqs = [r.event["sequence"] for r in route.accepted if r.event["directory_id"] == d["id"]]
        assert seqs == list(range(seqs[0], seqs[0] + 60)), seqs  # strictly increasing, no gap, no repeat
    assert route.refused  # failures really were injected


@SQLITE_ONLY
async def test_fifo_failure_blocks_until_an_operator_skips_it(stack, receiver):
    directory = await scratch_directory(stack)
    poison: set[str] = set()

    def respond(event: dict, _attempt: int) -> int:
        if not poison:
            poison.add(event["id"])
        return 500 if event["id"] in poison else 200

    endpoint, route = await subscribe(
        stack, receiver, [directory["id"]], respond=respond, fifo=True, retry_schedule=[0.05, 0.05]
    )
    await emit(stack, directory["id"], 5)
    failed = await wait_for(lambda: deliveries(stack, endpoint["id"], status="failed"), 30, "the head to fail")
    assert route.accepted == []  # nothing behind the failed head was sent
    assert failed[0]["attempts"] == 3 and failed[0]["event_id"] in poison
    r = await stack.api.post(f"/v1/endpoints/{endpoint['id']}/deliveries/{failed[0]['id']}/skip")
    assert r.status_code == 200 and r.json()["status"] == "skipped"
    await wait_for(lambda: len(route.events()) == 4, 30, "the 4 events after the skipped one")
    seqs = [e["sequence"] for e in route.events()]
    assert seqs == sorted(seqs)
    await record(stack.client, f"dispatch/{endpoint['id']}", "dispatch_fifo_blocked_then_skipped")


@SQLITE_ONLY
@pytest.mark.timeout(180)
async def test_rate_limit_holds_over_2000_events(stack, receiver):
    directory = await scratch_directory(stack)
    _endpoint, route = await subscribe(stack, receiver, [directory["id"]], rate_limit_per_second=50, max_concurrency=20)
    await emit(stack, directory["id"], 2000)
    await wait_for(lambda: len(route.accepted) >= 2000, 120, "2000 deliveries")
    times = sorted(r.at for r in route.accepted)
    rate = (len(times) - 1) / (times[-1] - times[0])
    worst_second = max(sum(1 for x in times if start <= x < start + 1) for start in times[:-50])
    print(f"measured rate {rate:.1f}/s, busiest second {worst_second}")
    assert rate <= 52
    assert worst_second <= 52


@SQLITE_ONLY
@pytest.mark.timeout(120)
async def test_retries_count_against_the_rate_limit(stack, receiver):
    directory = await scratch_directory(stack)
    _endpoint, route = await subscribe(
        stack,
        receiver,
        [directory["id"]],
        rate_limit_per_second=50,
        max_concurrency=20,
        retry_schedule=[0.5, 0.5],
        respond=lambda e, a: 500 if a == 1 and e["data"]["version"] % 3 == 0 else 200,
    )
    await emit(stack, directory["id"], 600)
    await wait_for(lambda: len(route.events()) >= 600, 90, "600 deliveries, a third of them retried")
    times = sorted(r.at for r in route.accepted + route.refused)  # every request, first attempts and retries
    rate = (len(times) - 1) / (times[-1] - times[0])
    worst_second = max(sum(1 for x in times if start <= x < start + 1) for start in times[:-50])
    print(
        f"{len(times)} requests ({len(route.refused)} refused, then retried): {rate:.1f}/s, busiest second "
        f"{worst_second}"
    )
    assert len(route.refused) == 200 and len(times) == 800
    assert rate <= 52 and worst_second <= 52


@pytest.mark.parametrize("stack", ["postgresql"], indirect=True)
@pytest.mark.timeout(180)
async def test_replay_of_a_long_history_requeues_every_event(stack, receiver):
    """More events than PostgreSQL takes bound parameters in one statement (65,535): the
    replay's IN lists are chunked. (SQLite as built here takes more.)"""
    from tests.support.e2e_helpers import _commit
    from tests.support.slapd import ROOT_DN, SUFFIX

    org = (await stack.api.post("/v1/organizations", json={"name": unique("long-history-")})).json()
    d = (
        await stack.api.post(
            "/v1/directories",
            json={
                "name": unique("long-"),
                "organization_id": org["id"],
                "ldap": {
                    "url": "ldap://127.0.0.1:1",
                    "bind_dn": ROOT_DN,
                    "user_base_dn": f"ou=none,{SUFFIX}",
                    "live": False,
                },
            },
        )
    ).json()
    n = 70_000
    await asyncio.to_thread(_commit, stack, d["id"], n, 0)  # before the endpoint exists: no deliveries yet
    endpoint, _route = await subscribe(stack, receiver, [d["id"]], organization_id=org["id"])
    # Disabled, so what the replay queues is counted, not sent.
    await stack.api.post(f"/v1/endpoints/{endpoint['id']}/disable", json={"reason": "counting a replay"})
    try:
        for _ in range(2):  # first every delivery is new, then every one exists already
            r = await stack.api.post(
                f"/v1/endpoints/{endpoint['id']}/replay", json={"directory_id": d["id"], "since_sequence": 1}
            )
            assert r.status_code == 200 and r.json()["requeued"] == n, r.text
            counts = (await stack.api.get(f"/v1/endpoints/{endpoint['id']}")).json()["delivery_counts"]
            assert counts == {"pending": n}, counts
    finally:
        assert (await stack.api.delete(f"/v1/endpoints/{endpoint['id']}")).status_code == 204


@SQLITE_ONLY
async def test_payload_over_the_cap_fails_at_creation_and_is_never_sent(stack, receiver):
    directory = await scratch_directory(stack)
    endpoint, route = await subscribe(stack, receiver, [directory["id"]], max_payload_bytes=2048)
    await emit(stack, directory["id"], 1, padding=4096)
    await emit(stack, directory["id"], 1, padding=10)
    await wait_for(lambda: len(route.events()) == 1, 30, "the small event")
    failed = await deliveries(stack, endpoint["id"], status="failed")
    assert len(failed) == 1 and "exceeds this endpoint's limit of 2048 bytes" in failed[0]["last_error"]
    assert failed[0]["attempt_log"] == []


@pytest.mark.parametrize(
    "url,needle",
    [
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://10.0.0.1/hook", "private"),
        ("http://[::1]/hook", "loopback"),
        ("file:///etc/passwd", "http"),
        ("http://localhost:9/hook", "loopback"),
        ("http://0.0.0.0/hook", "private or reserved"),
    ],
)
async def test_ssrf_guard_refuses_private_targets_in_production(stack, url, needle):
    production = stack.settings.model_copy(update={"allow_private_endpoints": False})
    app = create_app(production)

    async def endpoint_ids() -> list[str]:
        # IDs, not whole endpoints: earlier tests' endpoints may still be delivering (their
        # last_success_at moves); what matters is that no endpoint was created.
        return [e["id"] for e in (await stack.api.get("/v1/endpoints")).json()]

    before = await endpoint_ids()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://api",
        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
    ) as api:
        r = await api.post("/v1/endpoints", json={"url": url})
    assert r.status_code == 422, r.text
    assert needle in r.text
    assert await endpoint_ids() == before


async def test_ssrf_guard_checks_again_at_delivery(receiver):
    """An endpoint created in dev mode, delivered in production mode: no request leaves."""
    route = receiver.route("ssrf", "whsec_" + "A" * 44)
    sender = WebhookSender(timeout_seconds=5, allow_private=False)
    try:
        for host in ("localhost", "127.0.0.1"):
            url = f"http://{host}:{receiver.port}/hooks/ssrf"
            result = await sender.post(url, Signer(["whsec_" + "A" * 44]).headers("evt_x", "{}"), "{}")
            assert result.status_code is None and "SSRF guard" in result.error and "loopback" in result.error
        assert route.raw == [] and route.invalid == []
    finally:
        await sender.close()


@SQLITE_ONLY
async def test_cli_manages_endpoints(stack, tmp_path):
    async def cli(*args: str) -> str:
        return await run_cli(stack, tmp_path, "endpoints", *args)

    out = await cli(
        "add",
        "http://127.0.0.1:9/cli",
        "--event-type",
        "user.*",
        "--fifo",
        "--rate-limit",
        "5",
        "--retry-schedule",
        "1,2,3",
    )
    endpoint_id = out.split()[1]
    e = (await stack.api.get(f"/v1/endpoints/{endpoint_id}")).json()
    assert e["fifo"] and e["rate_limit_per_second"] == 5 and e["retry_schedule"] == [1, 2, 3]
    assert e["event_types"] == ["user.*"]
    assert "whsec_" in await cli("rotate-secret", endpoint_id, "--overlap-seconds", "60")
    await cli("disable", endpoint_id, "--reason", "maintenance")
    assert (await stack.api.get(f"/v1/endpoints/{endpoint_id}")).json()["disabled_reason"] == "maintenance"
    await cli("enable", endpoint_id)
    assert (await stack.api.get(f"/v1/endpoints/{endpoint_id}")).json()["enabled"] is True


@SQLITE_ONLY
async def test_redirects_fail_and_retry_after_is_honoured(stack, receiver):
    directory = await scratch_directory(stack)

    def respond(_event: dict, attempt: int):
        if attempt == 1:
            return 302, {"location": "http://127.0.0.1:9/elsewhere"}
        if attempt == 2:
            return 429, {"retry-after": "2"}
        return 200

    endpoint, route = await subscribe(
        stack, receiver, [directory["id"]], respond=respond, retry_schedule=[0.1, 0.1, 0.1]
    )
    await emit(stack, directory["id"], 1)
    await wait_for(lambda: route.accepted, 30, "the event after a redirect and a 429")
    arrivals = sorted([r.at for r in route.refused] + [r.at for r in route.accepted])
    assert [r.status for r in route.refused] == [302, 429]
    assert arrivals[2] - arrivals[1] >= 1.9  # waited for Retry-After, not the 0.1 s schedule
    d = await wait_for(lambda: deliveries(stack, endpoint["id"], status="succeeded"), 30, "the recorded success")
    assert [a["status_code"] for a in d[0]["attempt_log"]] == [302, 429, 200]


@SQLITE_ONLY
async def test_a_down_endpoint_opens_its_circuit_and_operators_see_it_everywhere(stack, receiver, tmp_path):
    directory = await scratch_directory(stack)
    up = {"on": False}
    endpoint, route = await subscribe(
        stack, receiver, [directory["id"]], respond=lambda _e, _a: 200 if up["on"] else 500, retry_schedule=[0.2, 600]
    )
    started = datetime.now(UTC) - timedelta(seconds=1)
    n = stack.settings.breaker_min_failures + 10
    await emit(stack, directory["id"], n)

    async def circuit_open():
        e = (await stack.api.get(f"/v1/endpoints/{endpoint['id']}")).json()
        return e if e["health"] == "circuit_open" and e["next_probe_at"] else None

    e = await wait_for(circuit_open, 30, "the circuit breaker to open")
    assert e["enabled"] and e["consecutive_failures"] >= stack.settings.breaker_min_failures

    async def probed():  # first attempts, first retries, and one probe: all failed and recorded
        e = (await stack.api.get(f"/v1/endpoints/{endpoint['id']}")).json()
        return e if e["consecutive_failures"] >= 2 * n + 1 else None

    e = await wait_for(probed, 30, "a probe to fail")
    # Every delivery held (the probe's too, though its own schedule is used up), none lost.
    assert e["delivery_counts"] == {"held": n}
    held = await deliveries(stack, endpoint["id"], status="held")
    assert len(held) == n and all(d["next_attempt_at"] is None for d in held)
    refused = len(route.refused)

    out = await run_cli(stack, tmp_path, "endpoints", "show", endpoint["id"])
    assert "circuit open since" in out and f"held {n}" in out, out
    assert "circuit open" in await run_cli(stack, tmp_path, "endpoints", "list")
    metrics = (await stack.api.get("/metrics")).text
    assert float(re.search(r"^dirhook_endpoints_circuit_open (\S+)$", metrics, re.M).group(1)) >= 1
    assert float(re.search(r"^dirhook_deliveries_held (\S+)$", metrics, re.M).group(1)) >= n
    from temporalio.api.sdk.v1 import WorkflowMetadata

    dispatcher = stack.client.get_workflow_handle(f"dispatch/{endpoint['id']}")
    meta = await dispatcher.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert "circuit open" in meta.current_details and f"{n} deliveries held" in meta.current_details
    listed = [
        w.id
        async for w in stack.client.list_workflows(
            f"EndpointId = '{endpoint['id']}' AND EndpointHealth = 'circuit_open'"
        )
    ]
    assert listed == [f"dispatch/{endpoint['id']}"]
    assert len(route.refused) == refused  # the next probe waits for the schedule (10 min): nothing else went out

    # The receiver is back; an operator's recover probes at once instead of in 10 minutes.
    up["on"] = True
    r = await stack.api.post(f"/v1/endpoints/{endpoint['id']}/recover", json={"since": started.isoformat()})
    assert r.status_code == 200 and r.json()["requeued"] == n
    await wait_for(lambda: len(route.events()) == n, 30, f"all {n} events after the probe")
    healthy = await wait_for(lambda: _healthy(stack, endpoint["id"]), 30, "the endpoint to be healthy")
    assert healthy["delivery_counts"] == {"succeeded": n} and healthy["consecutive_failures"] == 0
    assert len({r.headers["webhook-id"] for r in route.accepted}) == len(route.accepted) == n
    await record(stack.client, f"dispatch/{endpoint['id']}", "dispatch_circuit_open_then_recovered")


async def _healthy(stack, endpoint_id: str) -> dict | None:
    e = (await stack.api.get(f"/v1/endpoints/{endpoint_id}")).json()
    return e if e["health"] == "healthy" and set(e["delivery_counts"]) == {"succeeded"} else None
