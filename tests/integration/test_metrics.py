"""/metrics after a known sync: the series operators alert on, with the right values."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.e2e_helpers import connect_directory, count_types, sync, wait_delivered
from tests.support.wait import wait_for

pytestmark = [pytest.mark.parametrize("stack", ["sqlite"], indirect=True)]


async def scrape(stack) -> dict[tuple, float]:
    r = await stack.api.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def delta(after: dict, before: dict, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_metrics_after_a_known_sync(stack, slapd, receiver):
    before = await scrape(stack)
    conn = await connect_directory(stack, slapd, receiver, 20, 2)
    await sync(stack, conn.id, "full")
    events = await wait_delivered(stack, conn)
    after = await scrape(stack)

    counts = count_types(events)
    for type_, n in counts.items():
        assert delta(after, before, "dirhook_events_emitted_total", type=type_) == n, type_
    assert delta(after, before, "dirhook_delivery_attempts_total", outcome="succeeded") >= len(events)
    assert delta(after, before, "dirhook_delivery_latency_seconds_count") >= len(events)
    assert (
        delta(
            after, before, "dirhook_sync_pass_duration_seconds_count", provider="ldap", mode="full", status="succeeded"
        )
        == 1
    )
    assert delta(after, before, "dirhook_sync_objects_read_total", provider="ldap", kind="user") == 20
    assert delta(after, before, "dirhook_sync_objects_read_total", provider="ldap", kind="group") == 2

    async def gauges_match_the_api():
        # Other tests' deliveries share this database and may still move: compare a
        # scrape with the API's view until both are taken while nothing moved.
        endpoints = (await stack.api.get("/v1/endpoints")).json()
        retrying = 0
        for e in endpoints:
            retrying += len(
                (
                    await stack.api.get(
                        f"/v1/endpoints/{e['id']}/deliveries", params={"status": "retrying", "limit": 1000}
                    )
                ).json()["data"]
            )
        now = await scrape(stack)
        return (
            now[("dirhook_endpoints_disabled", ())] == sum(1 for e in endpoints if not e["enabled"])
            and now[("dirhook_endpoints", ())] == len(endpoints)
            and now[("dirhook_retries_pending", ())] == retrying
        )

    await wait_for(gauges_match_the_api, 30, "the gauges to match the API", interval=0.2)

    async def recorded():  # the receiver has them; their recording may trail by a flush
        return delta(await scrape(stack), before, "dirhook_deliveries", status="succeeded") >= len(events)

    await wait_for(recorded, 30, "the deliveries to be recorded as succeeded")

    # An endpoint disabled by an operator shows in the gauge and the state-change counter.
    await stack.api.post(f"/v1/endpoints/{conn.endpoint['id']}/disable", json={"reason": "maintenance window"})
    later = await scrape(stack)
    assert later[("dirhook_endpoints_disabled", ())] == after[("dirhook_endpoints_disabled", ())] + 1
    assert delta(later, after, "dirhook_endpoint_state_changes_total", state="disabled", cause="operator") == 1
