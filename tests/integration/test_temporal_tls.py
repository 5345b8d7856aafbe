"""Temporal behind mutual TLS: with DIRHOOK_TEMPORAL_TLS_* set, dirhook's workers and API
(both connect through dirhook.temporal.connect) reach a frontend that admits only clients
holding a certificate its CA signed; without the certificate, or in plain text, they do not."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import pytest_asyncio
from temporalio import activity
from temporalio.worker import Worker

from dirhook import temporal as t
from dirhook.config import Settings
from tests.support.tls import TestPKI
from tests.support.tls_proxy import TLSProxy
from workflows.delivery_sweep import DeliverySweepWorkflow


@activity.defn(name="wake_dispatchers")
async def _no_sweep(settle_seconds: float) -> int:
    return 0  # the sweep's activity, without a database: the round trip is what is tested


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return TestPKI(tmp_path_factory.mktemp("temporal-pki"))


@pytest_asyncio.fixture
async def mtls_frontend(temporal_env, pki):
    proxy = TLSProxy(temporal_env.client.service_client.config.target_host, pki.server_context(True))
    await proxy.start()
    yield proxy
    await proxy.stop()


def _client_files(pki: TestPKI, directory) -> tuple:
    pem = pki.client_pem("dirhook-worker")
    split = pem.index("-----BEGIN PRIVATE KEY-----")
    cert, key = directory / "worker.crt", directory / "worker.key"
    cert.write_text(pem[:split])
    key.write_text(pem[split:])
    return cert, key


async def test_workers_and_the_api_reach_temporal_over_mutual_tls(mtls_frontend, pki, tmp_path):
    cert, key = _client_files(pki, tmp_path)
    settings = Settings(
        temporal_address=mtls_frontend.address,
        temporal_tls_ca=pki.ca_bundle,
        temporal_tls_cert=cert,
        temporal_tls_key=key,
        temporal_tls_server_name="localhost",
        admin_token="t" * 32,
    )
    client = await asyncio.wait_for(t.connect(settings), 30)
    # A real round trip through the TLS frontend: a worker polls, a workflow runs on it.
    queue = f"tls-{uuid.uuid4().hex}"
    async with Worker(client, task_queue=queue, workflows=[DeliverySweepWorkflow], activities=[_no_sweep]):
        handle = await client.start_workflow(DeliverySweepWorkflow.run, id=f"tls-{uuid.uuid4().hex}", task_queue=queue)
        assert await asyncio.wait_for(handle.result(), 30) == 0


async def test_without_the_client_certificate_or_tls_temporal_is_not_reached(mtls_frontend, pki):
    ca_only = Settings(temporal_address=mtls_frontend.address, temporal_tls_ca=pki.ca_bundle, admin_token="t" * 32)
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(t.connect(ca_only), 30)
    plain = Settings(temporal_address=mtls_frontend.address, admin_token="t" * 32)
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(t.connect(plain), 30)


def test_a_certificate_without_its_key_or_an_unreadable_file_is_refused_with_the_setting(tmp_path):
    with pytest.raises(ValueError, match="DIRHOOK_TEMPORAL_TLS_CERT and DIRHOOK_TEMPORAL_TLS_KEY"):
        Settings(temporal_tls_cert=tmp_path / "c.pem", admin_token="t" * 32)
    missing = Settings(temporal_tls_ca=tmp_path / "nope.pem", admin_token="t" * 32)
    with pytest.raises(t.TemporalTLSError, match="DIRHOOK_TEMPORAL_TLS_CA: cannot read"):
        t.tls_config(missing)
    assert t.tls_config(Settings(admin_token="t" * 32)) is False
    assert t.tls_config(Settings(temporal_tls=True, admin_token="t" * 32)).client_cert is None
