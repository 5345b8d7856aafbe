"""Issue 14, finding 14: receivers that protect their endpoint with more than the signature
— an API key in a header, a client certificate (mutual TLS) — get what they ask for, while
the API shows neither the key nor the certificate's private key, and the database seals both."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from tests.support.e2e_helpers import connect_directory, run_cli, sync, wait_delivered
from tests.support.receiver import Receiver
from tests.support.wait import wait_for

API_KEY = "Bearer rcv-key-7f3a9c21b4d8e6"


async def test_a_receiver_that_requires_an_api_key_gets_it(stack, slapd, receiver, caplog, tmp_path):
    caplog.set_level("DEBUG")
    conn = await connect_directory(stack, slapd, receiver, 3, 1)
    conn.route.require_headers = {"authorization": API_KEY, "x-tenant": "acme"}
    path = f"/v1/endpoints/{conn.endpoint['id']}"
    # The operator's way: a file, so the key is in neither the shell history nor `ps`.
    headers_file = tmp_path / "headers.json"
    headers_file.write_text(json.dumps({"Authorization": API_KEY, "X-Tenant": "acme"}))
    out = await run_cli(stack, tmp_path, "endpoints", "auth", conn.endpoint["id"], "--headers-file", str(headers_file))
    assert "custom headers: Authorization, X-Tenant" in out and "rcv-key" not in out
    shown = await run_cli(stack, tmp_path, "endpoints", "show", conn.endpoint["id"])
    assert "custom headers: Authorization, X-Tenant" in shown and "rcv-key" not in shown
    r = await stack.api.get(path)
    assert r.json()["header_names"] == ["Authorization", "X-Tenant"] and API_KEY not in r.text

    await sync(stack, conn.id, "full")
    events = await wait_delivered(stack, conn)
    assert len(events) >= 4 and conn.route.unauthorized == [] and conn.route.invalid == []
    assert all(a.headers["authorization"] == API_KEY for a in conn.route.accepted)  # signed and keyed

    # Write-only: no read shows the value; the database holds it sealed; no log line has it.
    for read in (await stack.api.get(path), await stack.api.get("/v1/endpoints")):
        assert API_KEY.split()[1] not in read.text
    with stack.sessions() as s:
        stored = s.execute(text("select headers from endpoints where id = :i"), {"i": conn.endpoint["id"]}).scalar()
    assert stored.startswith("dhenc1:") and "rcv-key" not in stored
    assert API_KEY.split()[1] not in caplog.text

    # A header dirhook sets itself cannot be replaced; {} removes the custom ones.
    forged = await stack.api.patch(path, json={"headers": {"webhook-signature": "v1,forged"}})
    assert forged.status_code == 422 and "set by dirhook itself" in forged.text
    cleared = await stack.api.patch(path, json={"headers": {}})
    assert cleared.status_code == 200 and cleared.json()["header_names"] == []


async def test_a_receiver_that_requires_a_client_certificate_gets_it(stack, slapd, graph):
    pki = graph.pki  # the CA the stack's endpoint_ca_bundle trusts
    https = Receiver(ssl_context=pki.server_context(require_client_certificate=True))
    await https.start()
    try:
        conn = await connect_directory(stack, slapd, https, 2, 0, retry_schedule=[1, 1, 1, 1, 1, 1, 1, 1])
        path = f"/v1/endpoints/{conn.endpoint['id']}"
        assert conn.endpoint["url"].startswith("https://")

        # Without a certificate the TLS handshake fails: nothing arrives, the error says why.
        await sync(stack, conn.id, "full")

        async def first_failure() -> str | None:
            page = (await stack.api.get(f"{path}/deliveries", params={"status": "retrying"})).json()["data"]
            return page[0]["last_error"] if page else None

        error = await wait_for(first_failure, 30, "a failed first attempt")
        # TLS 1.3 checks the client's certificate after the handshake: the server refuses the
        # connection (a reset, or an SSL alert, depending on timing).
        assert any(w in error for w in ("SSL", "certificate", "reset", "Server disconnected")), error
        assert conn.route.raw == []

        pem = pki.client_pem("dirhook-delivery")
        r = await stack.api.patch(path, json={"client_certificate": pem})
        assert r.status_code == 200, r.text
        shown = r.json()["client_certificate"]
        assert shown["subject"] == "CN=dirhook-delivery" and "PRIVATE KEY" not in r.text
        events = await wait_delivered(stack, conn, timeout=60)  # the retries present it
        assert [e["type"] for e in events].count("user.created") == 2 and conn.route.invalid == []
        assert {a.headers["x-test-client-subject"] for a in conn.route.accepted} == {"commonName=dirhook-delivery"}
        with stack.sessions() as s:
            stored = s.execute(
                text("select client_certificate from endpoints where id = :i"), {"i": conn.endpoint["id"]}
            ).scalar()
        assert stored.startswith("dhenc1:") and "PRIVATE KEY" not in stored

        bad = await stack.api.patch(path, json={"client_certificate": pem.split("-----BEGIN PRIVATE KEY")[0]})
        assert bad.status_code == 422 and "no private key" in bad.text
        removed = await stack.api.patch(path, json={"client_certificate": None})
        assert removed.status_code == 200 and removed.json()["client_certificate"] is None
    finally:
        await https.stop()


@pytest.mark.parametrize("allowed", [False, True])
async def test_plain_http_endpoints_need_the_setting(stack, tmp_path, allowed):
    """The shared stacks allow http:// (their receivers are local); a deployment does not."""
    import httpx

    from dirhook.api.app import create_app

    settings = stack.settings.model_copy(update={"allow_http_endpoints": allowed})
    app = create_app(settings)
    headers = {"authorization": f"Bearer {settings.resolved_admin_token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api", headers=headers) as api:
        org = (await api.post("/v1/organizations", json={"name": "http-check"})).json()
        body = {"url": "http://127.0.0.1:9/hook", "organization_id": org["id"]}
        r = await api.post("/v1/endpoints", json=body)
        if allowed:
            assert r.status_code == 201, r.text
        else:
            assert r.status_code == 422 and "DIRHOOK_ALLOW_HTTP_ENDPOINTS" in r.text
            secure = await api.post("/v1/endpoints", json={**body, "url": "https://127.0.0.1:9/hook"})
            assert secure.status_code == 201, secure.text
            moved = await api.patch(f"/v1/endpoints/{secure.json()['id']}", json={"url": "http://127.0.0.1:9/x"})
            assert moved.status_code == 422
