"""Temporal connection, workflow IDs and dirhook's custom search attributes."""

from __future__ import annotations

from urllib.parse import quote

from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from dirhook.config import Settings

DIRECTORY_ID = SearchAttributeKey.for_keyword("DirectoryId")
ORGANIZATION_ID = SearchAttributeKey.for_keyword("OrganizationId")
ENDPOINT_ID = SearchAttributeKey.for_keyword("EndpointId")
EVENT_TYPE = SearchAttributeKey.for_keyword("EventType")
SYNC_MODE = SearchAttributeKey.for_keyword("SyncMode")
PROVIDER = SearchAttributeKey.for_keyword("Provider")
# An endpoint dispatcher's view of its endpoint: healthy | failing | circuit_open.
ENDPOINT_HEALTH = SearchAttributeKey.for_keyword("EndpointHealth")

SEARCH_ATTRIBUTES = (DIRECTORY_ID, ORGANIZATION_ID, ENDPOINT_ID, EVENT_TYPE, SYNC_MODE, PROVIDER, ENDPOINT_HEALTH)


def sync_workflow_id(directory_id: str) -> str:
    return f"dirsync/{directory_id}"


def ui_link(settings: Settings, workflow_id: str, run_id: str | None = None) -> str:
    """The Temporal UI's page of a workflow. Its IDs hold ``/`` (``dirsync/dir_…``), which
    must be escaped as the UI's own links do (``dirsync%2Fdir_…``): unescaped, the UI reads
    ``dir_…`` as a run ID and its API answers 400."""
    base = settings.temporal_ui_url or f"http://127.0.0.1:{settings.temporal_ui_port}"
    link = f"{base.rstrip('/')}/namespaces/{quote(settings.temporal_namespace, safe='')}/workflows/"
    link += quote(workflow_id, safe="")
    return f"{link}/{quote(run_id, safe='')}/history" if run_id else link


async def terminate_if_running(client: Client, workflow_id: str, reason: str) -> None:
    """Ends a workflow of a deleted or changed object; one that does not exist is fine."""
    from temporalio.service import RPCError, RPCStatusCode

    try:
        await client.get_workflow_handle(workflow_id).terminate(reason=reason)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise


def listener_workflow_id(directory_id: str) -> str:
    return f"ldaplisten/{directory_id}"


def dispatch_workflow_id(endpoint_id: str) -> str:
    return f"dispatch/{endpoint_id}"


def dev_server_search_attribute_args() -> list[str]:
    args = []
    for key in SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{key.name}=Keyword"]
    return args


class TemporalTLSError(ValueError):
    """A TLS setting names a file that cannot be read."""


def tls_config(settings: Settings) -> TLSConfig | bool:
    """How the workers and the API reach Temporal: plain (the embedded stack, a compose
    network), TLS with the system's roots, or TLS with a private CA and a client
    certificate (mTLS: Temporal then admits only holders of a certificate its CA signed)."""
    files = {
        "DIRHOOK_TEMPORAL_TLS_CA": settings.temporal_tls_ca,
        "DIRHOOK_TEMPORAL_TLS_CERT": settings.temporal_tls_cert,
        "DIRHOOK_TEMPORAL_TLS_KEY": settings.temporal_tls_key,
    }
    # An API key goes over TLS only, as Temporal Cloud requires.
    wanted = settings.temporal_tls or settings.temporal_tls_server_name or settings.temporal_api_key
    if not (wanted or any(files.values())):
        return False
    read: dict[str, bytes | None] = {}
    for name, path in files.items():
        try:
            read[name] = path.read_bytes() if path is not None else None
        except OSError as exc:
            raise TemporalTLSError(f"{name}: cannot read {path}: {exc.strerror}") from None
    return TLSConfig(
        server_root_ca_cert=read["DIRHOOK_TEMPORAL_TLS_CA"],
        domain=settings.temporal_tls_server_name,
        client_cert=read["DIRHOOK_TEMPORAL_TLS_CERT"],
        client_private_key=read["DIRHOOK_TEMPORAL_TLS_KEY"],
    )


def sdk_runtime(metrics_bind_address: str | None = None) -> Runtime:
    """A Temporal runtime whose Core logs (its Rust half: connection retries, worker
    warnings) go through Python's logging, so dirhook's JSON lines, not plain text with
    colour codes on stderr; with Prometheus metrics when an address is given."""
    import logging

    from temporalio.runtime import (
        LogForwardingConfig,
        LoggingConfig,
        PrometheusConfig,
        TelemetryConfig,
        TelemetryFilter,
    )

    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
            ),
            metrics=PrometheusConfig(bind_address=metrics_bind_address) if metrics_bind_address else None,
        )
    )


_forwarding_runtime: Runtime | None = None


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    from dirhook.codec import data_converter

    global _forwarding_runtime
    if runtime is None:  # one per process, as the SDK's default runtime is
        _forwarding_runtime = runtime = _forwarding_runtime or sdk_runtime()

    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        runtime=runtime,
        tls=tls_config(settings),
        api_key=api_key,
    )


async def register_search_attributes(client: Client, namespace: str) -> None:
    """Add dirhook's search attributes where the server lacks them (the time-skipping
    server and a fresh cluster). A workflow that upserts an unknown attribute fails its
    task forever, so every stack registers them before any worker runs."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
    from temporalio.service import RPCError, RPCStatusCode

    try:
        listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
        existing = set(listed.custom_attributes)
    except RPCError as exc:
        if exc.status != RPCStatusCode.UNIMPLEMENTED:  # the time-skipping server cannot list them
            raise
        existing = set()
    missing = {k.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in SEARCH_ATTRIBUTES if k.name not in existing}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )


async def wake_dispatcher(client: Client, settings: Settings, endpoint_id: str) -> None:
    """Signal-with-start the endpoint's dispatcher: it sends whatever is pending."""
    from temporalio.common import SearchAttributePair, TypedSearchAttributes

    from dirhook.contracts import DispatchInput

    # Imported here: the workflow module imports the delivery activities, which import this one.
    from workflows.endpoint_dispatch import EndpointDispatchWorkflow

    await client.start_workflow(
        EndpointDispatchWorkflow.run,
        DispatchInput(endpoint_id),
        id=dispatch_workflow_id(endpoint_id),
        task_queue=settings.delivery_task_queue,
        start_signal=EndpointDispatchWorkflow.wake.__name__,
        search_attributes=TypedSearchAttributes([SearchAttributePair(ENDPOINT_ID, endpoint_id)]),
        static_summary=f"Deliver pending events to endpoint {endpoint_id}",
    )


DELIVERY_SWEEP_SCHEDULE_ID = "delivery-sweep"


async def ensure_delivery_sweep(client: Client, settings: Settings) -> None:
    """Create (or bring to the configured interval) the Temporal Schedule that runs
    DeliverySweepWorkflow; an interval of 0 removes it. Every delivery worker calls this at
    start: creating it twice is harmless."""
    from datetime import timedelta

    from temporalio import client as tc
    from temporalio.service import RPCError, RPCStatusCode

    from workflows.delivery_sweep import DeliverySweepWorkflow

    handle = client.get_schedule_handle(DELIVERY_SWEEP_SCHEDULE_ID)
    every = settings.delivery_sweep_seconds
    if not every:
        try:
            await handle.delete()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
        return
    schedule = tc.Schedule(
        action=tc.ScheduleActionStartWorkflow(
            DeliverySweepWorkflow.run,
            id="delivery-sweep-run",
            task_queue=settings.delivery_task_queue,
            static_summary="Wake dispatchers whose deliveries wait",
        ),
        spec=tc.ScheduleSpec(intervals=[tc.ScheduleIntervalSpec(every=timedelta(seconds=every))]),
        policy=tc.SchedulePolicy(overlap=tc.ScheduleOverlapPolicy.SKIP),
        state=tc.ScheduleState(note=f"wakes endpoint dispatchers with waiting deliveries every {every:g}s"),
    )
    try:
        await client.create_schedule(DELIVERY_SWEEP_SCHEDULE_ID, schedule)
    except tc.ScheduleAlreadyRunningError:

        def update(current: tc.ScheduleUpdateInput) -> tc.ScheduleUpdate | None:
            now = current.description.schedule
            same_queue = getattr(now.action, "task_queue", None) == settings.delivery_task_queue
            if same_queue and [i.every for i in now.spec.intervals] == [timedelta(seconds=every)]:
                return None
            schedule.state.paused = now.state.paused
            return tc.ScheduleUpdate(schedule=schedule)

        await handle.update(update)
