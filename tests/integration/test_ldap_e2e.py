"""The walking skeleton end to end: real slapd -> Temporal -> signed webhooks at a real receiver,
on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowFailureError

from dirhook.models import Event
from tests.support.e2e_helpers import (
    GROUP_FIELDS,
    USER_FIELDS,
    all_events,
    connect_directory,
    count_types,
    run_cli,
    sync,
    wait_delivered,
)
from tests.support.slapd import ROOT_PW, expected_memberships, ldap_tool
from workflows.directory_sync import DirectorySyncWorkflow


async def test_full_sync_delivers_every_user_group_and_membership(stack, slapd, receiver):
    conn = await connect_directory(stack, slapd, receiver, 200, 20)
    status = await sync(stack, conn.id, "full")
    assert status["state"] == "succeeded"
    # Operators see the pass's progress through a query and in the UI's current details.
    handle = stack.client.get_workflow_handle(f"dirsync/{conn.id}")
    wf_status = await handle.query(DirectorySyncWorkflow.status)
    assert wf_status.state == "succeeded" and wf_status.progress["users_read"] == 200
    assert wf_status.progress["stage"] == "done" and wf_status.last_result.events_total > 200
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert "succeeded" in metadata.current_details and "users read: 200" in metadata.current_details
    # Live progress went to heartbeats and the run's row, never into the workflow's history.
    signals = [
        e.workflow_execution_signaled_event_attributes.signal_name
        async for e in handle.fetch_history_events()
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert "report_progress" not in signals, signals
    events = await wait_delivered(stack, conn)

    counts = count_types(events)
    assert counts["user.created"] == 200
    assert counts["group.created"] == 20
    assert counts["group.user_added"] == expected_memberships(200, 20)
    assert conn.route.invalid == []  # both standardwebhooks and svix accepted every request

    sequences = [e["sequence"] for e in sorted(events, key=lambda e: e["sequence"])]
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))  # unique, no gaps
    now = datetime.now(UTC).timestamp()
    for received in conn.route.accepted:
        event = Event.model_validate(received.event)
        assert received.headers["webhook-id"] == event.id and event.id.startswith("evt_")
        assert abs(int(received.headers["webhook-timestamp"]) - now) < 300
        assert event.directory_id == conn.id and event.organization_id == conn.directory["organization_id"]
        assert received.event["timestamp"].endswith("Z")
        data = received.event["data"]
        if event.type.startswith("user."):
            assert set(data) >= USER_FIELDS, USER_FIELDS - set(data)
            assert data["version"] >= 1 and data["active"] is True
            assert "userPassword" not in data["raw_attributes"]  # never sent anywhere
        elif event.type in ("group.created", "group.updated", "group.deleted"):
            assert set(data) >= GROUP_FIELDS
        elif event.type.startswith("group.user_"):
            assert set(data["user"]) >= USER_FIELDS and set(data["group"]) >= GROUP_FIELDS
    user0 = next(e["data"] for e in events if e["type"] == "user.created" and e["data"]["username"] == "user00000")
    assert user0["emails"] == [{"value": "user00000@example.com", "primary": True, "type": "work"}]
    assert [g["name"] for g in user0["groups"]] == ["group000", "group001"]
    assert user0["raw_attributes"]["employeeNumber"] == ["1000"]


async def test_incremental_sync_emits_exactly_the_changes(stack, slapd, receiver):
    conn = await connect_directory(stack, slapd, receiver, 30, 3)
    await sync(stack, conn.id, "full")
    before = len(await wait_delivered(stack, conn))

    await asyncio.to_thread(
        ldap_tool,
        "ldapmodify",
        slapd,
        f"dn: {conn.user_dn(4)}\nchangetype: modify\nreplace: title\ntitle: Staff Engineer\n",
    )
    await sync(stack, conn.id)
    events = (await wait_delivered(stack, conn))[before:]
    changes = [e for e in events if e["type"] != "directory.sync_completed"]
    assert [e["type"] for e in changes] == ["user.updated"]
    assert changes[0]["data"]["title"] == "Staff Engineer"
    assert changes[0]["data"]["version"] == 2
    assert changes[0]["previous_attributes"] == {"title": "Engineer"}

    # user 3 is in group000 and group001 (every third user is in two groups)
    before += len(events)
    await asyncio.to_thread(ldap_tool, "ldapdelete", slapd, conn.user_dn(3) + "\n")
    await sync(stack, conn.id)
    events = (await wait_delivered(stack, conn))[before:]
    changes = [e for e in events if e["type"] != "directory.sync_completed"]
    assert count_types(changes) == {"group.user_removed": 2, "user.deleted": 1}
    assert {e["data"]["group"]["name"] for e in changes if e["type"] == "group.user_removed"} == {
        "group000",
        "group001",
    }
    assert all(e["data"]["user"]["username"] == "user00003" for e in changes if e["type"] == "group.user_removed")
    deleted = next(e for e in changes if e["type"] == "user.deleted")
    assert deleted["data"]["username"] == "user00003"

    before += len(events)
    for mode in ("incremental", "full"):
        status = await sync(stack, conn.id, mode)
        assert status["last_run"]["counts"]["events_total"] == 0
    assert len(await all_events(stack, conn.id)) == before
    users = (await stack.api.get(f"/v1/directories/{conn.id}/users", params={"limit": 1000})).json()["data"]
    assert len(users) == 29


async def test_failed_delivery_is_retried_until_it_succeeds(stack, slapd, receiver):
    def respond(event: dict, attempt: int) -> int:
        return 500 if event["type"] == "group.created" and attempt <= 2 else 200

    conn = await connect_directory(stack, slapd, receiver, 3, 1, respond=respond, retry_schedule=[0.5, 0.5, 60])
    await sync(stack, conn.id, "full")
    events = await wait_delivered(stack, conn)
    group_event = next(e for e in events if e["type"] == "group.created")
    assert conn.route.attempts[group_event["id"]] == 3

    async def delivery():
        r = await stack.api.get(
            f"/v1/endpoints/{conn.endpoint['id']}/deliveries", params={"event_id": group_event["id"]}
        )
        data = r.json()["data"]
        return data[0] if data and data[0]["status"] == "succeeded" else None

    from tests.support.wait import wait_for

    d = await wait_for(delivery, 30, "the delivery to be recorded as succeeded")
    assert d["attempts"] == 3
    assert [a["status_code"] for a in d["attempt_log"]] == [500, 500, 200]
    assert [a["attempt"] for a in d["attempt_log"]] == [1, 2, 3]
    assert all(a["latency_ms"] >= 0 for a in d["attempt_log"])
    assert d["attempt_log"][0]["response_body"] == "receiver says no"

    # The retries were sent by the endpoint's dispatcher, at the planned times (no earlier).
    def at(value: str) -> datetime:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))

    assert all(at(a["started_at"]) >= at(a["scheduled_for"]) for a in d["attempt_log"][1:])
    others = await stack.api.get(f"/v1/endpoints/{conn.endpoint['id']}/deliveries", params={"status": "succeeded"})
    assert len(others.json()["data"]) == len(events)


async def test_concurrent_sync_requests_never_overlap(stack, slapd, receiver):
    conn = await connect_directory(stack, slapd, receiver, 300, 10)
    responses = await asyncio.gather(
        *(
            stack.api.post(f"/v1/directories/{conn.id}/sync", params={"mode": "full" if i % 2 else "incremental"})
            for i in range(10)
        )
    )
    assert [r.status_code for r in responses] == [202] * 10
    workflow_ids = {r.json()["workflow_id"] for r in responses}
    assert workflow_ids == {f"dirsync/{conn.id}"}

    async def idle():
        s = (await stack.api.get(f"/v1/directories/{conn.id}/sync")).json()
        return s["workflow_status"] == "COMPLETED"

    from tests.support.wait import wait_for

    await wait_for(idle, 90, "the sync workflow to complete")
    runs = (await stack.api.get(f"/v1/directories/{conn.id}/sync-runs")).json()
    assert 1 <= len(runs) <= 2, runs  # ten requests collapse into the running pass plus one queued
    spans = sorted((r["started_at"], r["finished_at"]) for r in runs)
    for (_s1, end1), (start2, _e2) in zip(spans, spans[1:]):
        assert end1 <= start2, f"passes overlapped: {spans}"
    await wait_delivered(stack, conn)
    assert count_types(conn.route.events())["user.created"] == 300


@pytest.mark.parametrize("failure", ["wrong_password", "unreachable"])
async def test_source_failure_changes_nothing_and_is_reported(stack, slapd, receiver, failure, tmp_path, caplog):
    caplog.set_level("DEBUG")
    conn = await connect_directory(stack, slapd, receiver, 5, 1)
    # The CLI's pass, as an operator runs it: what it read and wrote.
    out = await run_cli(stack, tmp_path, "sync", conn.id, "--full")
    assert "sync completed: 5 users, 1 groups read, 5 users written" in out, out
    delivered = len(await wait_delivered(stack, conn))
    before = (await stack.api.get(f"/v1/directories/{conn.id}")).json()
    users_before = (await stack.api.get(f"/v1/directories/{conn.id}/users")).json()["data"]
    await asyncio.to_thread(
        ldap_tool, "ldapmodify", slapd, f"dn: {conn.user_dn(1)}\nchangetype: modify\nreplace: title\ntitle: Changed\n"
    )

    if failure == "wrong_password":
        patch, expected = {"bind_password": "not-the-password"}, "invalidCredentials"
    else:
        from tests.support.ports import free_port

        # A new URL needs the bind password in the same request (it is where the password goes).
        patch = {"ldap": {"url": f"ldap://127.0.0.1:{free_port()}"}, "bind_password": "slapd-test-secret"}
        expected = "cannot reach LDAP server"
    r = await stack.api.patch(f"/v1/directories/{conn.id}", json=patch)
    assert r.status_code == 200, r.text
    assert "not-the-password" not in r.text

    # Temporal UI: the workflow fails with the message, and says so in its details.
    with pytest.raises(WorkflowFailureError) as failed:
        await sync(stack, conn.id)
    assert expected in str(failed.value.cause)
    # API
    status = (await stack.api.get(f"/v1/directories/{conn.id}/sync")).json()
    assert status["state"] == "failed" and expected in status["error"]
    assert status["last_run"]["status"] == "failed"
    # CLI
    assert expected in await run_cli(stack, tmp_path, "sync", conn.id, code=1)
    # Nothing changed: no event, same cursor, same users.
    after = (await stack.api.get(f"/v1/directories/{conn.id}")).json()
    if failure == "wrong_password":
        assert after["cursor"] == before["cursor"]
    assert (await stack.api.get(f"/v1/directories/{conn.id}/users")).json()["data"] == users_before
    assert len(await all_events(stack, conn.id)) == delivered

    # Once fixed, the pending change flows.
    undo = {"bind_password": "slapd-test-secret"}
    if failure != "wrong_password":
        undo["ldap"] = {"url": slapd.url}
    assert (await stack.api.patch(f"/v1/directories/{conn.id}", json=undo)).status_code == 200
    await sync(stack, conn.id)
    new = (await wait_delivered(stack, conn))[delivered:]
    updated = [e for e in new if e["type"] == "user.updated"]
    assert len(updated) == 1 and updated[0]["previous_attributes"] == {"title": "Engineer"}
    # Nothing this test did wrote a secret into the logs.
    logged = caplog.text
    assert logged  # the worker did log (the failure, at least)
    for secret in (
        "slapd-test-secret",
        "not-the-password",
        conn.endpoint["secret"],
        stack.settings.resolved_admin_token,
    ):
        assert secret not in logged


async def test_credential_attributes_of_a_real_server_go_nowhere(stack, slapd, receiver):
    """Issue 14, finding 9: slapd hands a bind account that may read them the hashes and the
    private key (inetOrgPerson's userPassword and userPKCS12); none reaches an event, the API
    or the stored record."""
    import base64

    from sqlalchemy import select, text

    from dirhook.db.schema import User

    conn = await connect_directory(stack, slapd, receiver, 3, 1)
    pkcs12 = b"0\x82PKCS12-private-key-material"
    await asyncio.to_thread(
        ldap_tool,
        "ldapmodify",
        slapd,
        f"dn: {conn.user_dn(0)}\nchangetype: modify\nadd: userPKCS12\n"
        f"userPKCS12:: {base64.b64encode(pkcs12).decode()}\n",
    )
    await sync(stack, conn.id, "full")
    events = await wait_delivered(stack, conn)
    assert len([e for e in events if e["type"] == "user.created"]) == 3
    bodies = [r.body for r in conn.route.accepted]
    users = (await stack.api.get(f"/v1/directories/{conn.id}/users")).text
    with stack.sessions() as s:
        stored = [repr(r) for r in s.scalars(select(User.source_record).where(User.directory_id == conn.id))]
        # Finding 3: the bind password and the signing secret are sealed in the database.
        sealed = s.execute(
            text("select d.secret, e.secret from directories d, endpoints e where d.id = :d and e.id = :e"),
            {"d": conn.id, "e": conn.endpoint["id"]},
        ).one()
    assert all(v.startswith("dhenc1:test-k1:") for v in sealed), sealed
    assert ROOT_PW not in repr(sealed) and conn.endpoint["secret"] not in repr(sealed)
    assert len(stored) == 3 and any("employeeNumber" in r for r in stored)
    for where, texts in (("events", bodies), ("API", [users]), ("stored record", stored)):
        for body in texts:
            for leaked in ("pw-user0", "PKCS12-private", base64.b64encode(pkcs12).decode(), "userPKCS12"):
                assert leaked not in body, (where, leaked)
