"""What happens to a delivery after an attempt, and to its endpoint's health. Pure: no I/O.

Every delivery row is in a state some running part acts on (see ``DeliveryStatus``); the
functions here decide the next state from an attempt's result, so the one transaction that
records the attempt also moves the row on — a crash between two writes cannot leave a row
that nothing will pick up again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from dirhook.contracts import EndpointHealth


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # due now: a first attempt, or put back by the breaker or an operator
    RETRYING = "retrying"  # failed; due again at next_attempt_at (never without one)
    HELD = "held"  # failed while the endpoint's circuit breaker was open: sent when it closes
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # for good: retry schedule used up, 410 Gone, or over the payload cap
    SKIPPED = "skipped"  # held back: endpoint disabled, or skipped by an operator; recoverable


# States the dispatcher still acts on; everything else waits for an operator (recover, resend).
OPEN_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING, DeliveryStatus.HELD)


def retry_delay(
    schedule: list[float], attempts_made: int, retry_after: float | None, rng: random.Random | None = None
) -> float | None:
    """Wait before the next attempt, or None when the schedule is used up.

    ``attempts_made`` counts attempts so far (the first one is immediate); up to ±10 %
    jitter spreads retries of many failed events so a recovering receiver is not hit by
    all of them in the same second. A Retry-After longer than the schedule's wait wins.
    """
    index = attempts_made - 1
    if index < 0 or index >= len(schedule):
        return None
    delay = float(schedule[index])
    if rng is not None and delay > 0:
        delay *= 1 + rng.uniform(-0.1, 0.1)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def probe_wait(schedule: list[float], probes_made: int, retry_after: float | None) -> float:
    """Wait before the breaker's next probe: the retry schedule's pace (its last wait once it
    is used up, until the endpoint is disabled for failing too long); Retry-After wins."""
    wait = float(schedule[min(probes_made, len(schedule) - 1)]) if schedule else 60.0
    return max(wait, retry_after or 0.0)


@dataclass(frozen=True)
class Outcome:
    """One attempt as the rules see it."""

    attempt: int  # its number for its delivery (1 = first attempt)
    succeeded: bool
    gone: bool  # 410: disable the endpoint
    started_at: datetime
    retry_after: float | None = None


@dataclass(frozen=True)
class BreakerPolicy:
    # The breaker opens after this many failed attempts in a row, provided a retry is among
    # them: a first attempt failing can be the event or a short blip (a deploy) that the
    # first retry rides out; a retry failing too, with nothing succeeding in between,
    # means the endpoint is down. Below the volume, each delivery's own schedule is cheap.
    min_failures: int = 50
    enabled: bool = True  # FIFO endpoints already send only each directory's head


@dataclass(frozen=True)
class Health:
    """An endpoint's delivery health, as stored on its row."""

    failing_since: datetime | None = None
    consecutive_failures: int = 0
    breaker_opened_at: datetime | None = None
    next_probe_at: datetime | None = None
    probes: int = 0
    last_success_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.breaker_opened_at is not None

    @property
    def state(self) -> EndpointHealth:
        if self.open:
            return EndpointHealth.CIRCUIT_OPEN
        return EndpointHealth.FAILING if self.failing_since is not None else EndpointHealth.HEALTHY


def next_health(
    health: Health, outcomes: list[Outcome], now: datetime, schedule: list[float], policy: BreakerPolicy
) -> Health:
    """The endpoint's health after a batch of attempts.

    Any success closes the breaker and resets the failure streak to the failures that
    started after the last success. Otherwise the streak grows, and the breaker opens (or,
    already open, plans its next probe at the schedule's pace)."""
    if not outcomes:
        return health
    # Attempt start times order a batch's outcomes; the health's own times are ``now``
    # (the engine's clock, which the time-skipping test server moves).
    successes = [o.started_at for o in outcomes if o.succeeded]
    if successes:
        last = max(successes)
        after = [o for o in outcomes if not o.succeeded and o.started_at > last]
        return Health(failing_since=now if after else None, consecutive_failures=len(after), last_success_at=now)
    failures = len(outcomes)
    retry_after = max((o.retry_after or 0.0 for o in outcomes), default=0.0) or None
    h = replace(
        health, consecutive_failures=health.consecutive_failures + failures, failing_since=health.failing_since or now
    )
    if h.open:
        return replace(
            h,
            probes=h.probes + 1,
            next_probe_at=now + timedelta(seconds=probe_wait(schedule, h.probes + 1, retry_after)),
        )
    if policy.enabled and h.consecutive_failures >= policy.min_failures and any(o.attempt >= 2 for o in outcomes):
        return replace(
            h,
            breaker_opened_at=now,
            probes=0,
            next_probe_at=now + timedelta(seconds=probe_wait(schedule, 0, retry_after)),
        )
    return h


@dataclass(frozen=True)
class RowChange:
    status: DeliveryStatus
    next_attempt_at: datetime | None
    note: str | None = None  # appended to the attempt's error as the row's last_error


def after_attempt(
    outcome: Outcome, schedule: list[float], breaker_open: bool, now: datetime, rng: random.Random | None
) -> RowChange:
    """Where a delivery goes after an attempt (``breaker_open``: the endpoint's state after
    the batch this attempt was recorded with)."""
    if outcome.succeeded:
        return RowChange(DeliveryStatus.SUCCEEDED, None)
    if outcome.gone:
        return RowChange(DeliveryStatus.FAILED, None, "the receiver answered 410 Gone")
    if breaker_open:
        # The endpoint is down, not this event: held until a probe gets through (or the
        # endpoint is disabled for failing too long), whatever is left of its own schedule.
        return RowChange(DeliveryStatus.HELD, None)
    delay = retry_delay(schedule, outcome.attempt, outcome.retry_after, rng)
    if delay is None:
        return RowChange(DeliveryStatus.FAILED, None, f"retry schedule used up after {outcome.attempt} attempts")
    return RowChange(DeliveryStatus.RETRYING, now + timedelta(seconds=delay))
