"""Operators find dirhook's work in Temporal with the list filters the README gives them."""

from __future__ import annotations

import pytest

from tests.e2e_helpers import connect_directory, sync, wait_delivered
from tests.support.wait import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("stack", ["sqlite"], indirect=True)]


async def listed(stack, query: str) -> list:
    return [w async for w in stack.client.list_workflows(query)]


async def test_sync_and_failing_delivery_are_found_by_search_attributes(stack, slapd, receiver):
    conn = await connect_directory(stack, slapd, receiver, 3, 1,
                                   respond=lambda e, a: 503 if e["type"] == "group.created" and a < 3 else 200,
                                   retry_schedule=[0.5, 0.5])
    await sync(stack, conn.id, "full")
    await wait_delivered(stack, conn)
    ep = conn.endpoint["id"]

    # The README's filters, verbatim apart from the IDs.
    syncs = await wait_for(lambda: listed(stack, f"DirectoryId = '{conn.id}' AND WorkflowType = 'DirectorySyncWorkflow'"),
                           30, "the sync in the visibility store")
    assert syncs[0].id == f"dirsync/{conn.id}"
    retries = await wait_for(lambda: listed(stack, f"EndpointId = '{ep}' AND WorkflowType = 'WebhookDeliveryWorkflow'"),
                             30, "the failing delivery's workflow")
    assert len(retries) == 1 and retries[0].id.startswith(f"delivery/{ep}/evt_")
    typed = await listed(stack, f"EndpointId = '{ep}' AND EventType = 'group.created'")
    assert {w.id for w in typed} == {retries[0].id}
    desc = await stack.client.get_workflow_handle(retries[0].id).describe()
    summary = await desc.static_summary()
    assert summary and "group.created" in summary
