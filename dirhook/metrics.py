"""Prometheus metrics (prometheus-client).

Two kinds: what a process did (counters and histograms, in every process that does the
work: workers, and the API for what it commits itself), and what the database says
(pending retries, disabled endpoints, events and deliveries by kind), collected at
scrape time by the API so every replica reports the same numbers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

EVENTS_EMITTED = Counter("dirhook_events_emitted_total", "Events committed to the outbox", ["type"])
DELIVERY_ATTEMPTS = Counter("dirhook_delivery_attempts_total", "Webhook delivery attempts by outcome", ["outcome"])
DELIVERY_LATENCY = Histogram(
    "dirhook_delivery_latency_seconds",
    "Time from sending a webhook to its answer",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
)
BREAKER_TRANSITIONS = Counter(
    "dirhook_endpoint_breaker_transitions_total", "Endpoint circuit breakers opened or closed", ["transition"]
)
ENDPOINT_STATE_CHANGES = Counter(
    "dirhook_endpoint_state_changes_total", "Endpoints enabled or disabled", ["state", "cause"]
)
SYNC_PASS_DURATION = Histogram(
    "dirhook_sync_pass_duration_seconds",
    "Duration of sync passes",
    ["provider", "mode", "status"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
DIRECTORY_LOCK_WAIT = Histogram(
    "dirhook_directory_lock_wait_seconds",
    "Time a writer waited for its directory (one writer per directory)",
    ["caller"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
SYNC_OBJECTS_READ = Counter("dirhook_sync_objects_read_total", "Objects read from directories", ["provider", "kind"])


def attempt_outcome(status_code: int | None, succeeded: bool) -> str:
    if succeeded:
        return "succeeded"
    if status_code is None:
        return "network_error"
    if status_code == 410:
        return "gone"
    return f"http_{status_code // 100}xx"


@dataclass(frozen=True)
class _Counts:
    by_status: dict[str, int]
    disabled: int
    circuit_open: int
    endpoints: int
    by_type: dict[str, int]


class DatabaseCollector(Collector):
    """Gauges read from the database, at most once per ``cache_seconds``: the counts scan the
    deliveries and events tables, and scrapes (several Prometheus servers, or anyone who can
    reach /metrics) must not turn into a full-table scan each (issue 14, finding 5)."""

    def __init__(self, sessions: sessionmaker[Session], cache_seconds: float = 15.0):
        self.sessions = sessions
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cached: tuple[float, _Counts] | None = None

    def _read(self) -> _Counts:
        from dirhook.db.schema import Delivery, Endpoint, EventRow

        with self.sessions() as s:
            by_status = dict(s.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
            disabled = s.scalar(select(func.count()).select_from(Endpoint).where(Endpoint.enabled.is_(False)))
            circuit_open = s.scalar(
                select(func.count()).select_from(Endpoint).where(Endpoint.breaker_opened_at.is_not(None))
            )
            endpoints = s.scalar(select(func.count()).select_from(Endpoint))
            by_type = dict(s.execute(select(EventRow.type, func.count()).group_by(EventRow.type)).all())
        return _Counts(by_status, disabled or 0, circuit_open or 0, endpoints or 0, by_type)

    def counts(self) -> _Counts:
        with self._lock:  # concurrent scrapes share one read
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self.cache_seconds:
                self._cached = (now, self._read())
            return self._cached[1]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from dirhook.delivery.rules import DeliveryStatus

        c = self.counts()
        by_status, disabled, circuit_open, endpoints, by_type = (
            c.by_status,
            c.disabled,
            c.circuit_open,
            c.endpoints,
            c.by_type,
        )
        deliveries = GaugeMetricFamily("dirhook_deliveries", "Deliveries by status, as stored", labels=["status"])
        for status in DeliveryStatus:
            deliveries.add_metric([status.value], by_status.get(status.value, 0))
        yield deliveries
        yield GaugeMetricFamily(
            "dirhook_retries_pending", "Deliveries waiting for a retry", value=by_status.get(DeliveryStatus.RETRYING, 0)
        )
        yield GaugeMetricFamily(
            "dirhook_deliveries_held",
            "Deliveries held by an open circuit breaker",
            value=by_status.get(DeliveryStatus.HELD, 0),
        )
        yield GaugeMetricFamily(
            "dirhook_endpoints_circuit_open", "Endpoints whose circuit breaker is open", value=circuit_open
        )
        yield GaugeMetricFamily("dirhook_endpoints_disabled", "Endpoints currently disabled", value=disabled)
        yield GaugeMetricFamily("dirhook_endpoints", "Endpoints", value=endpoints)
        stored = GaugeMetricFamily("dirhook_events_stored", "Events in the outbox by type", labels=["type"])
        for type_, n in sorted(by_type.items()):
            stored.add_metric([type_], n)
        yield stored
