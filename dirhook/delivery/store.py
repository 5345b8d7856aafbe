"""The delivery rows the engine reads and the one transaction that records attempts.

Core tables, not ORM entities, on the hot paths: the ORM's row loading cost more than the
queries (profiled with py-spy under bench/delivery_throughput.py).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from dirhook.config import Settings
from dirhook.db.schema import Delivery, DeliveryAttempt, Endpoint, EventRow, table_of, utcnow
from dirhook.delivery.rules import (
    OPEN_STATUSES,
    BreakerPolicy,
    DeliveryStatus,
    Health,
    Outcome,
    RowChange,
    after_attempt,
    next_health,
)
from dirhook.delivery.sender import AttemptResult
from dirhook.endpoint_auth import decode_headers
from dirhook.endpoint_state import GONE_REASON, disable_if_failing_too_long, release_held, set_enabled, signing_secrets
from dirhook.metrics import BREAKER_TRANSITIONS


@dataclass
class EndpointSnapshot:
    """What the engine needs to know of an endpoint (secrets stay in this process, never in history)."""

    id: str
    url: str
    enabled: bool
    fifo: bool
    rate: float | None
    concurrency: int
    timeout: float
    schedule: list[float]
    health: Health
    secrets: list[str] = field(repr=False, default_factory=list)
    disabled_reason: str | None = None
    # What the receiver asks for besides the signature (dirhook/endpoint_auth.py).
    headers: dict[str, str] = field(repr=False, default_factory=dict)
    client_certificate: str | None = field(repr=False, default=None)


@dataclass
class Pending:
    id: int
    event_id: str
    body: str
    event_type: str
    directory_id: str
    attempts: int
    status: str
    next_attempt_at: datetime | None


@dataclass
class Recorded:
    health: Health
    changes: dict[int, RowChange]
    disabled: str | None = None  # why this recording disabled the endpoint
    opened: bool = False  # this recording opened the circuit breaker
    closed: bool = False  # … or closed it


def health_of(e: Endpoint) -> Health:
    return Health(
        failing_since=e.failing_since,
        consecutive_failures=e.consecutive_failures or 0,
        breaker_opened_at=e.breaker_opened_at,
        next_probe_at=e.next_probe_at,
        probes=e.probes or 0,
        last_success_at=e.last_success_at,
    )


def _store_health(e: Endpoint, h: Health) -> None:
    e.failing_since, e.consecutive_failures = h.failing_since, h.consecutive_failures
    e.breaker_opened_at, e.next_probe_at, e.probes = h.breaker_opened_at, h.next_probe_at, h.probes
    if h.last_success_at is not None:
        e.last_success_at = h.last_success_at


def _pending_query() -> Select[Any]:
    d, e = table_of(Delivery).c, table_of(EventRow).c
    return select(
        d.id, d.event_id, e.body, d.event_type, d.directory_id, d.attempts, d.status, d.next_attempt_at
    ).join_from(table_of(Delivery), table_of(EventRow), e.pk == d.event_pk)


class DeliveryStore:
    def __init__(self, sessions: sessionmaker[Session], settings: Settings):
        self.sessions = sessions
        self.settings = settings
        self.policy = BreakerPolicy(min_failures=settings.breaker_min_failures)

    # -- reading -------------------------------------------------------------------------------
    def snapshot(self, endpoint_id: str) -> EndpointSnapshot | None:
        with self.sessions() as s:
            e = s.get(Endpoint, endpoint_id)
            if e is None:
                return None
            return EndpointSnapshot(
                id=e.id,
                url=e.url,
                enabled=e.enabled,
                fifo=e.fifo,
                rate=e.rate_limit_per_second,
                concurrency=e.max_concurrency or self.settings.delivery_concurrency,
                timeout=e.timeout_seconds or self.settings.delivery_timeout_seconds,
                schedule=self.schedule_of(e),
                health=health_of(e),
                secrets=signing_secrets(s, e),
                disabled_reason=e.disabled_reason,
                headers=decode_headers(e.headers),
                client_certificate=e.client_certificate,
            )

    def schedule_of(self, e: Endpoint) -> list[float]:
        return [float(x) for x in (e.retry_schedule or self.settings.retry_schedule_seconds)]

    def _rows(self, q: Select[Any]) -> list[Pending]:
        with self.sessions() as s:
            return [Pending(*r) for r in s.connection().execute(q).all()]

    def load_pending(self, endpoint_id: str, after_id: int) -> list[Pending]:
        """Due first attempts (and deliveries put back to pending), oldest first."""
        d = table_of(Delivery).c
        return self._rows(
            _pending_query()
            .where(d.endpoint_id == endpoint_id, d.status == DeliveryStatus.PENDING, d.id > after_id)
            .order_by(d.id)
            .limit(self.settings.delivery_batch_size)
        )

    def load_due_retries(self, endpoint_id: str, now: datetime) -> list[Pending]:
        """Retries whose time has come, the most overdue first."""
        d = table_of(Delivery).c
        return self._rows(
            _pending_query()
            .where(d.endpoint_id == endpoint_id, d.status == DeliveryStatus.RETRYING, d.next_attempt_at <= now)
            .order_by(d.next_attempt_at)
            .limit(self.settings.delivery_batch_size)
        )

    def load_fifo(self, endpoint_id: str) -> list[Pending]:
        """Everything not yet delivered, in sequence order (a failed head blocks its directory)."""
        d = table_of(Delivery).c
        statuses = (*OPEN_STATUSES, DeliveryStatus.FAILED)
        return self._rows(
            _pending_query()
            .where(d.endpoint_id == endpoint_id, d.status.in_(statuses))
            .order_by(d.event_pk)
            .limit(self.settings.delivery_batch_size)
        )

    def oldest_open(self, endpoint_id: str) -> Pending | None:
        """The delivery the circuit breaker probes with: the oldest one still to be sent."""
        d = table_of(Delivery).c
        rows = self._rows(
            _pending_query().where(d.endpoint_id == endpoint_id, d.status.in_(OPEN_STATUSES)).order_by(d.id).limit(1)
        )
        return rows[0] if rows else None

    def count(self, endpoint_id: str, status: DeliveryStatus) -> int:
        with self.sessions() as s:
            return (
                s.scalar(
                    select(func.count())
                    .select_from(Delivery)
                    .where(Delivery.endpoint_id == endpoint_id, Delivery.status == status)
                )
                or 0
            )

    def next_retry_at(self, endpoint_id: str) -> datetime | None:
        with self.sessions() as s:
            return s.scalar(
                select(func.min(Delivery.next_attempt_at)).where(
                    Delivery.endpoint_id == endpoint_id, Delivery.status == DeliveryStatus.RETRYING
                )
            )

    def endpoints_with_work(self, settle_seconds: float = 0.0) -> list[str]:
        """Enabled endpoints with a delivery to send now (pending or held for longer than
        ``settle_seconds``, or a retry that is due): what a sweep wakes."""
        now = utcnow()
        settled = now - timedelta(seconds=settle_seconds)
        with self.sessions() as s:
            waiting = (
                Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.HELD)) & (Delivery.updated_at <= settled)
            ) | ((Delivery.status == DeliveryStatus.RETRYING) & (Delivery.next_attempt_at <= now))
            return list(
                s.scalars(
                    select(Delivery.endpoint_id)
                    .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
                    .where(waiting, Endpoint.enabled.is_(True))
                    .group_by(Delivery.endpoint_id)
                )
            )

    # -- recording -----------------------------------------------------------------------------
    def record(
        self,
        endpoint_id: str,
        attempts: list[tuple[Pending, AttemptResult]],
        now: datetime,
        rng: random.Random | None = None,
    ) -> Recorded | None:
        """Attempts, their deliveries' next state and the endpoint's health, in one transaction
        (``now``: the engine's clock). None when the endpoint no longer exists."""
        if not attempts:
            return None
        with self.sessions.begin() as s:
            e = s.get(Endpoint, endpoint_id)
            if e is None:
                return None
            before = health_of(e)
            if e.fifo and before.open:  # switched to FIFO while its circuit was open: FIFO has none
                before = replace(before, breaker_opened_at=None, next_probe_at=None, probes=0)
            schedule = self.schedule_of(e)
            outcomes = [Outcome(d.attempts + 1, r.succeeded, r.gone, r.started_at, r.retry_after) for d, r in attempts]
            policy = BreakerPolicy(self.policy.min_failures, enabled=not e.fifo)
            after = next_health(before, outcomes, now, schedule, policy)
            changes = {
                d.id: after_attempt(o, schedule, after.open, now, rng)
                for (d, _r), o in zip(attempts, outcomes, strict=True)
            }
            self._write_attempts(s, attempts, changes, now)
            result = Recorded(
                after, changes, opened=after.open and not before.open, closed=before.open and not after.open
            )
            _store_health(e, after)
            if result.opened:
                # Retries waiting for their time join the hold: the endpoint is down, and they
                # all go out, oldest first, as soon as a probe gets through.
                s.execute(
                    update(Delivery)
                    .where(Delivery.endpoint_id == e.id, Delivery.status == DeliveryStatus.RETRYING)
                    .values(status=DeliveryStatus.HELD, next_attempt_at=None, updated_at=now)
                )
                BREAKER_TRANSITIONS.labels("opened").inc()
            if result.closed:
                release_held(s, e.id, now)
                BREAKER_TRANSITIONS.labels("closed").inc()
            if any(o.gone for o in outcomes):
                set_enabled(s, e, False, GONE_REASON, "gone")
                result.disabled = GONE_REASON
            else:
                disable_after = timedelta(
                    seconds=e.disable_after_seconds or self.settings.endpoint_disable_after_seconds
                )
                result.disabled = disable_if_failing_too_long(s, e, now, disable_after)
            return result

    @staticmethod
    def _write_attempts(
        s: Session, attempts: list[tuple[Pending, AttemptResult]], changes: dict[int, RowChange], now: datetime
    ) -> None:
        s.connection().execute(
            insert(table_of(DeliveryAttempt)),
            [
                # A retry's planned time is the one its row carried; first attempts have none.
                {
                    "delivery_id": d.id,
                    "attempt": d.attempts + 1,
                    "scheduled_for": d.next_attempt_at,
                    "started_at": r.started_at,
                    "status_code": r.status_code,
                    "latency_ms": r.latency_ms,
                    "response_body": r.response_body,
                    "error": r.error,
                }
                for d, r in attempts
            ],
        )
        table = table_of(Delivery)
        # Rows without a retry time are mostly alike (a batch of successes): one UPDATE per
        # distinct outcome. Retry times are jittered per row: one executemany for those.
        grouped: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        timed: list[dict[str, Any]] = []
        for d, r in attempts:
            c = changes[d.id]
            error = r.error if c.note is None else f"{r.error}; {c.note}"
            if c.next_attempt_at is None:
                grouped[(c.status.value, d.attempts + 1, r.status_code, error)].append(d.id)
            else:
                timed.append(
                    {
                        "b_id": d.id,
                        "b_status": c.status.value,
                        "b_attempts": d.attempts + 1,
                        "b_code": r.status_code,
                        "b_error": error,
                        "b_next": c.next_attempt_at,
                    }
                )
        for (status, attempts_made, code, error), ids in grouped.items():
            s.connection().execute(
                update(table)
                .where(table.c.id.in_(ids))
                .values(
                    status=status,
                    attempts=attempts_made,
                    last_status_code=code,
                    last_error=error,
                    next_attempt_at=None,
                    updated_at=now,
                )
            )
        if timed:
            s.connection().execute(
                update(table)
                .where(table.c.id == bindparam("b_id"))
                .values(
                    status=bindparam("b_status"),
                    attempts=bindparam("b_attempts"),
                    last_status_code=bindparam("b_code"),
                    last_error=bindparam("b_error"),
                    next_attempt_at=bindparam("b_next"),
                    updated_at=now,
                ),
                timed,
            )
