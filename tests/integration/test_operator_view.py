"""Operators find dirhook's work in Temporal with the list filters the README gives them."""

from __future__ import annotations

import pytest

from tests.support.e2e_helpers import connect_directory, sync, wait_delivered
from tests.support.wait import wait_for

pytestmark = [pytest.mark.parametrize("stack", ["sqlite"], indirect=True)]


async def listed(stack, query: str) -> list:
    return [w async for w in stack.client.list_workflows(query)]


async def test_sync_and_failing_delivery_are_found_by_search_attributes(stack, slapd, receiver):
    conn = await connect_directory(
        stack,
        slapd,
        receiver,
        3,
        1,
        respond=lambda e, a: 503 if e["type"] == "group.created" and a < 3 else 200,
        retry_schedule=[0.5, 0.5],
    )
    await sync(stack, conn.id, "full")
    await wait_delivered(stack, conn)
    ep = conn.endpoint["id"]

    # The README's filters, verbatim apart from the IDs.
    syncs = await wait_for(
        lambda: listed(stack, f"DirectoryId = '{conn.id}' AND WorkflowType = 'DirectorySyncWorkflow'"),
        30,
        "the sync in the visibility store",
    )
    assert syncs[0].id == f"dirsync/{conn.id}"
    # A failed delivery is a row retried by the endpoint's dispatcher, not a workflow of its own:
    # the dispatcher is what the UI lists for the endpoint, and the API has each attempt.
    dispatchers = await listed(stack, f"EndpointId = '{ep}' AND WorkflowType = 'EndpointDispatchWorkflow'")
    assert [w.id for w in dispatchers] == [f"dispatch/{ep}"]
    assert await listed(stack, f"EndpointId = '{ep}' AND WorkflowType = 'WebhookDeliveryWorkflow'") == []
    desc = await stack.client.get_workflow_handle(dispatchers[0].id).describe()
    summary = await desc.static_summary()
    assert summary and ep in summary

    async def group_created_delivery():
        # The receiver has the event before the dispatcher records that attempt (attempts are
        # written in batches beside the sending): wait for the delivery's own row to succeed.
        page = (await stack.api.get(f"/v1/endpoints/{ep}/deliveries", params={"limit": 1000})).json()["data"]
        done = [d for d in page if d["event_type"] == "group.created" and d["status"] == "succeeded"]
        return done

    failed_once = await wait_for(group_created_delivery, 30, "the group.created delivery recorded as succeeded")
    assert [a["status_code"] for a in failed_once[0]["attempt_log"]] == [503, 503, 200]
