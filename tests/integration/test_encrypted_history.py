"""With encryption on (as in every end-to-end test here and under `dirhook dev`), Temporal's
own copy of a sync and of its deliveries holds no personal data and no secret; the API's
codec endpoint decodes the same payloads for an operator who may see them."""

from __future__ import annotations

import re

import httpx
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client

from tests.conftest import UI_ORIGIN, unique
from tests.support.e2e_helpers import connect_directory, sync
from tests.support.slapd import ROOT_PW
from tests.support.wait import wait_for
from workflows.endpoint_dispatch import HEALTH_ATTRIBUTE_PATCH

pytestmark = [pytest.mark.parametrize("stack", ["sqlite"], indirect=True)]

N_USERS = 5


def payloads_of(event) -> list[Payload]:
    """Every Payload anywhere in a history event, found by walking the message."""
    found: list[Payload] = []

    def walk(message):
        if isinstance(message, Payload):
            found.append(message)
            return
        for field, value in message.ListFields():
            if field.message_type is None:
                continue
            if isinstance(value, Message):
                walk(value)
            elif field.message_type.GetOptions().map_entry:
                for item in value.values():
                    if isinstance(item, Message):
                        walk(item)
            else:
                for item in value:
                    walk(item)

    walk(event)
    return found


async def test_histories_hold_no_personal_data_and_decode_through_the_codec(stack, slapd, receiver):
    conn = await connect_directory(
        stack,
        slapd,
        receiver,
        N_USERS,
        1,
        respond=lambda e, a: 500 if e["type"] == "group.created" else 200,
        retry_schedule=[0.2, 3600],
    )
    await sync(stack, conn.id, "full")
    ep = conn.endpoint["id"]
    raw = Client(stack.client.service_client, namespace=stack.client.namespace)  # no codec: what the database holds
    query = f"DirectoryId = '{conn.id}' OR EndpointId = '{ep}'"

    async def workflows():
        found = [w async for w in raw.list_workflows(query)]
        kinds = {w.workflow_type for w in found}
        return found if {"DirectorySyncWorkflow", "EndpointDispatchWorkflow"} <= kinds else None

    await wait_for(lambda: conn.route.refused, 30, "the failed attempt")
    found = await wait_for(
        workflows, 30, "the sync and the dispatcher (which retries the failing delivery) in Temporal"
    )

    async def dispatcher_recorded_the_failure():
        return (await stack.client.get_workflow_handle(f"dispatch/{ep}").query("counts"))["failed"] >= 1

    await wait_for(dispatcher_recorded_the_failure, 30, "the dispatcher's batch with the failed attempt")

    events = []
    for w in found:
        events += [e async for e in raw.get_workflow_handle(w.id, run_id=w.run_id).fetch_history_events()]
    stored = b"".join(e.SerializeToString() for e in events)
    assert conn.id.encode() in stored  # the search attributes are plain: the search can see payload bytes

    secrets = [
        ROOT_PW,
        conn.endpoint["secret"],
        conn.endpoint["secret"].removeprefix("whsec_"),
        conn.directory["name"],
        "@example.com",
    ]
    secrets += [f"Number{i}" for i in range(N_USERS)] + [f"User {i}" for i in range(N_USERS)]
    for text in secrets:
        assert text.encode() not in stored, f"{text!r} is readable in Temporal's history"

    payloads = [p for e in events for p in payloads_of(e)]
    encrypted = [p for p in payloads if p.metadata.get("encoding") == b"binary/encrypted"]
    assert len(encrypted) > 10 and all(p.metadata["encryption-key-id"] == b"test-k1" for p in encrypted)
    # what stays readable: the search attributes operators filter on, IDs and kinds only
    plain = {p.data for p in payloads if p.metadata.get("encoding") != b"binary/encrypted"}
    assert plain <= {
        f'"{v}"'.encode()
        for v in (
            conn.id,
            ep,
            conn.directory["organization_id"],
            "full",
            "incremental",
            "ldap",
            "healthy",
            "failing",
            "circuit_open",
        )
    } | {
        # workflow.patched markers: the patch's name, as Temporal records it
        f'["{HEALTH_ATTRIBUTE_PATCH}"]'.encode(),
        f'{{"id":"{HEALTH_ATTRIBUTE_PATCH}","deprecated":false}}'.encode(),
    }, plain

    body = json_format.MessageToJson(Payloads(payloads=encrypted))
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as anonymous:
        refused = await anonymous.post("/codec/decode", content=body, headers={"content-type": "application/json"})
        assert refused.status_code == 401
        decoded = await anonymous.post(
            "/codec/decode",
            content=body,
            headers={
                "content-type": "application/json",
                "x-namespace": "default",
                "origin": UI_ORIGIN,
                "authorization": f"Bearer {stack.settings.resolved_admin_token}",
            },
        )
    assert decoded.status_code == 200, decoded.text
    assert decoded.headers["access-control-allow-origin"] == UI_ORIGIN
    out = json_format.Parse(decoded.text, Payloads()).payloads
    assert len(out) == len(encrypted) and not any(p.metadata.get("encoding") == b"binary/encrypted" for p in out)
    clear = b"".join(p.data for p in out)
    assert conn.directory["name"].encode() in clear  # the sync's input and summary, decoded
    assert re.search(rb'"failed":\s*[1-9]', clear)  # the dispatcher's batch with the failed attempt, decoded


async def test_the_codec_endpoint_guards_itself(stack):
    plain = Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=b'{"mail":"a@example.com"}')])
    body = json_format.MessageToJson(plain)
    admin = {"authorization": f"Bearer {stack.settings.resolved_admin_token}", "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as client:
        encoded = await client.post("/codec/encode", content=body, headers=admin)
        assert encoded.status_code == 200 and b"a@example.com" not in encoded.content
        roundtrip = await client.post("/codec/decode", content=encoded.content, headers=admin)
        assert json_format.Parse(roundtrip.text, Payloads()) == plain

        org = (await stack.api.post("/v1/organizations", json={"name": "codec"})).json()
        key = (await stack.api.post(f"/v1/organizations/{org['id']}/api-keys", json={"name": "k"})).json()["key"]
        for headers in ({"authorization": f"Bearer {key}"}, {"authorization": "Bearer nope"}, {"origin": UI_ORIGIN}):
            r = await client.post(
                "/codec/decode", content=encoded.content, headers={"content-type": "application/json", **headers}
            )
            assert r.status_code == 401, headers  # an organization's key sees one organization; this sees all

        bad = await client.post("/codec/decode", content=b"{nope", headers=admin)
        assert bad.status_code == 400 and "Payloads" in bad.text
        tampered = json_format.Parse(encoded.text, Payloads())
        tampered.payloads[0].metadata["encryption-key-id"] = b"other"
        r = await client.post("/codec/decode", content=json_format.MessageToJson(tampered), headers=admin)
        assert r.status_code == 422 and "other" in r.text

        preflight = await client.options(
            "/codec/decode",
            headers={
                "origin": UI_ORIGIN,
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type,x-namespace",
            },
        )
        assert preflight.headers["access-control-allow-origin"] == UI_ORIGIN
        assert "x-namespace" in preflight.headers["access-control-allow-headers"]
        stranger = await client.options("/codec/decode", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in stranger.headers

        wrong = await client.post(
            "/codec/login", content=b"token=nope", headers={"content-type": "application/x-www-form-urlencoded"}
        )
        assert wrong.status_code == 401 and "dirhook_codec" not in wrong.headers.get("set-cookie", "")
        login = await client.post(
            "/codec/login",
            content=f"token={stack.settings.resolved_admin_token}".encode(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert login.status_code == 200 and "HttpOnly" in login.headers["set-cookie"]
        assert stack.settings.resolved_admin_token not in login.headers["set-cookie"]
        with_cookie = await client.post(
            "/codec/decode", content=encoded.content, headers={"content-type": "application/json", "origin": UI_ORIGIN}
        )
        assert with_cookie.status_code == 200


async def test_a_workflow_written_without_the_key_is_refused(stack):
    """Someone who reaches Temporal (not dirhook) starts a pass with a payload of their own:
    the worker, which holds the keyring, refuses to act on a payload it did not encrypt."""
    raw = Client(stack.client.service_client, namespace=stack.client.namespace)  # no codec
    handle = await raw.start_workflow(
        "DirectorySyncWorkflow",
        {"directory_id": "dir_forged", "mode": "full"},
        id=f"dirsync/{unique('dir_forged')}",
        task_queue=stack.settings.sync_task_queue,
    )
    try:

        async def refused():
            events = [e async for e in handle.fetch_history_events()]
            failed = [e for e in events if e.HasField("workflow_task_failed_event_attributes")]
            return (events, failed) if failed else None

        events, failed = await wait_for(refused, 30, "the worker to refuse the forged workflow's input")
        info = failed[0].workflow_task_failed_event_attributes.failure.application_failure_info
        assert info.type == "UndecryptablePayload"
        assert not any(e.HasField("activity_task_scheduled_event_attributes") for e in events)
    finally:
        await handle.terminate(reason="test over")
