"""Worker processes: ``python -m workers`` (or ``dirhook worker``)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.delivery import DeliveryActivities
from activities.sync import SyncActivities
from dirhook.config import Settings
from dirhook.db import secrets
from dirhook.db.engine import make_sessionmaker, open_database
from dirhook.delivery.sender import WebhookSender
from workflows.delivery_sweep import DeliverySweepWorkflow
from workflows.directory_sync import DirectorySyncWorkflow
from workflows.endpoint_dispatch import EndpointDispatchWorkflow
from workflows.ldap_listener import LdapListenerWorkflow
from workflows.scheduled_sync import ScheduledSyncWorkflow

log = logging.getLogger(__name__)

QUEUES = ("sync", "delivery")
# Every workflow a worker may run (the replay test replays their recorded histories).
ALL_WORKFLOWS = [
    DirectorySyncWorkflow,
    ScheduledSyncWorkflow,
    LdapListenerWorkflow,
    EndpointDispatchWorkflow,
    DeliverySweepWorkflow,
]


# What a worker closes when it stops: the engine, the executors, the HTTP sender.
Closer = Callable[[], Any]


def build_workers(
    client: Client, settings: Settings, queues: Iterable[str] = QUEUES
) -> tuple[list[Worker], list[Closer]]:
    """Workers for the chosen queues, and the resources to close after they stop."""
    queues = list(queues)
    unknown = set(queues) - set(QUEUES)
    if unknown:
        raise ValueError(f"unknown queue(s) {', '.join(sorted(unknown))}; choose among {', '.join(QUEUES)}")
    engine = open_database(settings)
    secrets.check_readable(engine)  # SecretsLocked: a key is missing; every pass would fail
    sessions = make_sessionmaker(engine)
    workers: list[Worker] = []
    closers: list[Closer] = [engine.dispose]
    loop = asyncio.get_running_loop()
    if "sync" in queues:
        # Sync passes run ldap3 and SQLAlchemy, which block: they get threads of their own.
        executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sync-activity")
        closers.append(lambda: executor.shutdown(wait=False))
        sync = SyncActivities(sessions, settings, client, loop)
        workers.append(
            Worker(
                client,
                task_queue=settings.sync_task_queue,
                workflows=[DirectorySyncWorkflow, ScheduledSyncWorkflow],
                activities=[sync.run_pass, sync.discard_held_deletions, sync.request_scheduled_sync],
                activity_executor=executor,
                max_concurrent_activities=8,
                graceful_shutdown_timeout=timedelta(seconds=30),
                # A pass's heartbeat carries its committed progress: sent at most every second
                # (not every 80 % of the heartbeat timeout), it is what a retried attempt and the
                # UI's pending-activity view see of how far the pass got.
                max_heartbeat_throttle_interval=timedelta(seconds=1),
            )
        )
        # Live LDAP listeners wait on a socket for hours: a queue and threads of their own,
        # so they never take a sync pass's slot.
        listen_executor = ThreadPoolExecutor(max_workers=settings.ldap_listeners_max, thread_name_prefix="ldap-listen")
        closers.append(lambda: listen_executor.shutdown(wait=False))
        workers.append(
            Worker(
                client,
                task_queue=settings.listen_task_queue,
                workflows=[LdapListenerWorkflow],
                activities=[sync.listen_for_changes],
                activity_executor=listen_executor,
                max_concurrent_activities=settings.ldap_listeners_max,
                graceful_shutdown_timeout=timedelta(seconds=5),
                # Heartbeats are how a listener learns it was cancelled (its directory changed
                # or went away): within a second, not 80 % of the heartbeat timeout.
                max_heartbeat_throttle_interval=timedelta(seconds=1),
            )
        )
    if "delivery" in queues:
        sender = WebhookSender(
            timeout_seconds=settings.delivery_timeout_seconds,
            allow_private=settings.allow_private_endpoints,
            ca_bundle=settings.endpoint_ca_bundle,
        )
        closers.append(sender.close)
        delivery = DeliveryActivities(sessions, settings, client, sender)
        workers.append(
            Worker(
                client,
                task_queue=settings.delivery_task_queue,
                workflows=[EndpointDispatchWorkflow, DeliverySweepWorkflow],
                activities=[delivery.deliver_pending, delivery.wake_dispatchers],
                max_concurrent_activities=100,
                graceful_shutdown_timeout=timedelta(seconds=30),
                # The dispatch activity's heartbeat timeout is 10 s: heartbeats reach the server
                # at least every second, so a lost worker is noticed in seconds, not minutes.
                max_heartbeat_throttle_interval=timedelta(seconds=1),
            )
        )
    return workers, closers


async def close_all(closers: list[Closer]) -> None:
    for close in reversed(closers):
        result = close()
        if asyncio.iscoroutine(result):
            await result


async def run_workers(settings: Settings, queues: Iterable[str] = QUEUES) -> None:
    from dirhook import temporal as t

    runtime = None
    if settings.temporal_sdk_metrics_port:
        runtime = t.sdk_runtime(f"{settings.metrics_host}:{settings.temporal_sdk_metrics_port}")
    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.worker_metrics_port, addr=settings.metrics_host)
    client = await t.connect(settings, runtime)
    queues = list(queues)
    if "delivery" in queues:
        await t.ensure_delivery_sweep(client, settings)
    workers, closers = build_workers(client, settings, queues)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as stack:
        for w in workers:
            await stack.enter_async_context(w)
        log.info("worker serving %s", ", ".join(w.task_queue for w in workers))
        await stop.wait()
        log.info("worker stopping: letting in-flight activities finish")
    await close_all(closers)
