"""Real servers for the test session: slapd, Temporal dev server, PostgreSQL, a receiver,
and dirhook itself (worker + API on a real port), once per database."""

from __future__ import annotations

import asyncio
import itertools
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import uvicorn
from sqlalchemy.orm import sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from dirhook.api.app import create_app
from dirhook.codec import data_converter
from dirhook.config import Settings
from dirhook.db.engine import make_sessionmaker, migrate, open_database
from dirhook.devstack import temporal_cli
from dirhook.logs import JsonFormatter
from dirhook.temporal import SEARCH_ATTRIBUTES
from tests.support.google_admin import AdminSdkServer
from tests.support.graph import GraphServer
from tests.support.ports import free_port
from tests.support.postgres import PostgresCluster
from tests.support.receiver import Receiver
from tests.support.samba import SambaDC
from tests.support.slapd import Slapd
from tests.support.tls_proxy import TLSProxy
from workers import build_workers, close_all

# Clients of the test API server drop idle connections after 2 s, before uvicorn's 5 s
# keep-alive timeout: at the same 5 s, a request could go out on a connection the server
# was closing (CI saw it as httpx.ReadError).
API_CLIENT_LIMITS = httpx.Limits(keepalive_expiry=2.0)

ADMIN_TOKEN = "test-admin-token-0123456789abcdefghij"
TEST_ENCRYPTION_KEY = "q3NxlMSd0UeCmbS1ZUs3KZp8yXo0f2pVwcPp3Ahb0nM="  # 32 bytes, base64
UI_ORIGIN = "http://127.0.0.1:8233"


SESSION_LOG = "session-logs.jsonl"


UNIT = Path(__file__).parent / "unit"
INTEGRATION = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items):
    # The fast set is a folder (tests/unit), not a marker a new module could forget:
    # everything under tests/integration runs real servers and is marked slow here, and a
    # test module anywhere else is refused rather than landing in either set by accident.
    for item in items:
        parents = Path(str(item.path)).parents
        if INTEGRATION in parents:
            item.add_marker(pytest.mark.slow)
        elif UNIT not in parents:
            raise pytest.UsageError(
                f"{item.path}: test modules live in tests/unit (no servers) or tests/integration (real servers)"
            )
    last = [item for item in items if item.get_closest_marker("last")]
    items[:] = [item for item in items if not item.get_closest_marker("last")] + last


@pytest.fixture(scope="session", autouse=True)
def session_log(tmp_path_factory):
    """Everything logged in this process (dirhook at DEBUG), as JSON lines, for
    test_logs_hold_no_secret to read at the end; processes the tests start keep their own
    logs under the same base directory."""
    path = tmp_path_factory.getbasetemp() / SESSION_LOG
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    ours = {name: logging.getLogger(name) for name in ("dirhook", "activities", "workers", "workflows")}
    previous = {name: logger.level for name, logger in ours.items()}
    for logger in ours.values():
        logger.setLevel(logging.DEBUG)
    yield path
    for name, logger in ours.items():
        logger.setLevel(previous[name])
    root.removeHandler(handler)
    handler.close()


@pytest.fixture(scope="session")
def slapd():
    server = Slapd()
    server.prepare()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def samba_dc():
    dc = SambaDC()
    try:
        dc.start()
        yield dc
    finally:
        dc.stop()


@pytest.fixture(scope="session")
def postgres():
    cluster = PostgresCluster()
    cluster.start()
    yield cluster
    cluster.stop()


@pytest_asyncio.fixture(scope="session")
async def temporal_env():
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
        ui=False,
        # The SDK waits 5 s by default; a loaded 2-core machine once needed longer.
        dev_server_startup_timeout=timedelta(seconds=60),
    )
    yield env
    await env.shutdown()


@pytest_asyncio.fixture(scope="session")
async def receiver():
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@dataclass
class Stack:
    name: str
    settings: Settings
    api: httpx.AsyncClient
    api_url: str
    sessions: sessionmaker
    client: Client


_counter = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}{next(_counter)}"


@pytest_asyncio.fixture(scope="session")
async def graph():
    """The local Microsoft Graph (tests/support/graph.py); each test makes its own tenant."""
    server = GraphServer()
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture(scope="session")
async def google_admin(graph):
    """The local Google Admin SDK (tests/support/google_admin.py), its certificate from the
    local Graph's CA (the stacks trust that one); each test makes its own account."""
    server = AdminSdkServer(graph.pki)
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture(scope="session", params=["sqlite", "postgresql"])
async def stack(request, temporal_env, tmp_path_factory, graph):
    """dirhook's worker and API, on SQLite or on PostgreSQL, sharing the session's Temporal server."""
    data_dir = tmp_path_factory.mktemp(f"dirhook-{request.param}")
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres").create_database("dirhook_e2e")
    else:
        url = f"sqlite:///{data_dir / 'dirhook.db'}"
    api_port = free_port()
    # The API's public https address, as Google Workspace's push notifications reach it.
    public = TLSProxy(f"127.0.0.1:{api_port}", graph.pki.server_context(), alpn=["http/1.1"])
    await public.start()
    settings = Settings(
        data_dir=data_dir,
        database_url=url,
        admin_token=ADMIN_TOKEN,
        temporal_address=temporal_env.client.service_client.config.target_host,
        task_queue=f"dirhook-{request.param}",
        allow_private_endpoints=True,
        allow_http_endpoints=True,
        api_port=api_port,
        ldap_timestamp_overlap_seconds=0,
        # Every end-to-end test runs with encrypted payloads, as `dirhook dev` does.
        encryption_keys={"test-k1": TEST_ENCRYPTION_KEY},
        codec_cors_origins=[UI_ORIGIN],
        entra_ca_bundle=str(graph.ca_bundle),
        allow_private_entra_hosts=True,  # the local Graph listens on 127.0.0.1
        google_ca_bundle=str(graph.ca_bundle),  # the local Admin SDK's certificate: the same CA
        allow_private_google_hosts=True,
        public_url=f"https://{public.address}",
        endpoint_ca_bundle=str(graph.ca_bundle),  # HTTPS receivers' certificates come from the same CA
        # The shared stacks do not test the SCIM rate limit (test_scim_input does, with its own
        # settings): scim2-tester's compliance run, at over 100 requests a second on a fast
        # machine, must not be cut short by it.
        # Gauges read fresh at each scrape: tests assert them right after the state changes
        # (the cache itself is tested in tests/unit/test_metrics_endpoint.py).
        metrics_cache_seconds=0,
        scim_rate_limit_per_second=1000.0,
        scim_rate_limit_burst=2000.0,
        # Pushed deprovisions settle after 2 s without another (10 s in production): the SCIM
        # tests wait for their deletions that much less.
        scim_deprovision_quiet_seconds=2.0,
        scim_deprovision_max_wait_seconds=20.0,
    )
    migrate(url)
    client = Client(
        temporal_env.client.service_client,
        namespace=temporal_env.client.namespace,
        data_converter=data_converter(settings),
    )
    workers, closers = build_workers(client, settings)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=api_port, log_level="warning", lifespan="on")
    )
    async with AsyncExitStack() as stack:
        for w in workers:
            await stack.enter_async_context(w)
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                serving.result()
            await asyncio.sleep(0.02)
        api_url = f"http://127.0.0.1:{api_port}"
        async with httpx.AsyncClient(
            base_url=api_url, timeout=30, limits=API_CLIENT_LIMITS, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as api:
            engine = open_database(settings)
            yield Stack(request.param, settings, api, api_url, make_sessionmaker(engine), client)
            engine.dispose()
        server.should_exit = True
        await asyncio.wait_for(serving, 30)
    await close_all(closers)
    await public.stop()
