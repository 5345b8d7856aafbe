import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from standardwebhooks.webhooks import Webhook as StdWebhook
from standardwebhooks.webhooks import WebhookVerificationError as StdVerificationError
from svix.webhooks import Webhook as SvixWebhook
from svix.webhooks import WebhookVerificationError

from dirhook.config import DEFAULT_RETRY_SCHEDULE
from dirhook.delivery.pacing import Pacer
from dirhook.delivery.rules import retry_delay
from dirhook.delivery.sender import parse_retry_after
from dirhook.signing import Signer, generate_secret, is_valid_secret
from dirhook.subscriptions import endpoint_wants, validate_event_type_patterns


def test_signatures_verify_with_both_libraries_and_only_with_the_right_secret():
    secret, other = generate_secret(), generate_secret()
    assert is_valid_secret(secret) and not is_valid_secret("whsec_" + "QQ==") and not is_valid_secret("abc")
    body = '{"id":"evt_1","type":"user.created"}'
    headers = Signer([secret]).headers("evt_1", body)
    assert StdWebhook(secret).verify(body, headers)["id"] == "evt_1"
    SvixWebhook(secret).verify(body, headers)  # raises when the signature is wrong
    with pytest.raises(WebhookVerificationError):
        SvixWebhook(other).verify(body, headers)
    with pytest.raises(StdVerificationError):
        StdWebhook(secret).verify(body.replace("created", "deleted"), headers)


def test_two_secrets_sign_twice_and_each_verifies():
    old, new = generate_secret(), generate_secret()
    headers = Signer([old, new]).headers("evt_2", "{}")
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        StdWebhook(secret).verify("{}", headers)


def test_stale_timestamp_is_refused_by_receivers():
    secret = generate_secret()
    headers = Signer([secret]).headers("evt_3", "{}", when=datetime.now(UTC) - timedelta(minutes=10))
    with pytest.raises(StdVerificationError):
        StdWebhook(secret).verify("{}", headers)


def test_retry_schedule_follows_svix_with_jitter_and_retry_after():
    schedule = list(DEFAULT_RETRY_SCHEDULE)
    assert [retry_delay(schedule, n, None) for n in range(1, 9)] == [5, 300, 1800, 7200, 18000, 36000, 36000, None]
    rng = random.Random(1)
    jittered = [retry_delay(schedule, 2, None, rng) for _ in range(50)]
    assert all(270 <= d <= 330 for d in jittered) and len(set(jittered)) > 1
    assert retry_delay(schedule, 1, 120) == 120  # Retry-After longer than the schedule wins
    assert retry_delay(schedule, 2, 1) == 300


def test_retry_after_parsing():
    now = datetime(2026, 11, 29, tzinfo=UTC)
    assert parse_retry_after("2") == 2
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_retry_after("99999999") == 24 * 3600


def test_subscriptions_with_wildcards_and_directory_filter():
    assert validate_event_type_patterns(["user.*", "group.created"]) == ["user.*", "group.created"]
    with pytest.raises(ValueError, match="matches no event type"):
        validate_event_type_patterns(["users.*"])
    assert endpoint_wants(None, None, "user.created", "d1")
    assert endpoint_wants(["user.*"], None, "user.deleted", "d1")
    assert not endpoint_wants(["user.*"], None, "group.created", "d1")
    assert not endpoint_wants(None, ["d2"], "user.created", "d1")


async def test_pacer_never_bursts_after_the_event_loop_stalls():
    pacer = Pacer(rate=100)  # one send every 10 ms
    sent: list[float] = []

    async def sender():
        for _ in range(5):
            await pacer.wait()
            sent.append(time.time())

    async def staller():
        await asyncio.sleep(0.05)
        time.sleep(0.15)  # a blocked loop: GC, a slow commit, a busy CI machine

    await asyncio.wait_for(asyncio.gather(staller(), *(sender() for _ in range(10))), 10)
    gaps = [b - a for a, b in zip(sent, sent[1:])]
    assert len(sent) == 50
    assert min(gaps) >= 0.0099, min(gaps)  # ~0.01 s, minus the clock's own rounding


# -- the circuit breaker and each delivery's next state (dirhook/delivery/rules.py) -------------
from dirhook.delivery.rules import (  # noqa: E402
    BreakerPolicy,
    DeliveryStatus,
    Health,
    Outcome,
    after_attempt,
    next_health,
    probe_wait,
)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SCHEDULE = [5.0, 300.0, 1800.0]
POLICY = BreakerPolicy(min_failures=50)


def failures(n: int, attempt: int, at: datetime = T0, retry_after: float | None = None) -> list[Outcome]:
    return [Outcome(attempt, False, False, at + timedelta(milliseconds=i), retry_after) for i in range(n)]


def test_a_blip_that_fails_only_first_attempts_never_opens_the_breaker():
    h = next_health(Health(), failures(6000, attempt=1), T0, SCHEDULE, POLICY)
    assert not h.open and h.state == "failing" and h.consecutive_failures == 6000 and h.failing_since == T0
    later = T0 + timedelta(seconds=5)
    h = next_health(h, [Outcome(2, True, False, later)], later, SCHEDULE, POLICY)
    assert h == Health(last_success_at=later) and h.state == "healthy"


def test_retries_failing_too_open_the_breaker_and_probes_follow_the_schedule():
    h = next_health(Health(), failures(40, attempt=1), T0, SCHEDULE, POLICY)
    h = next_health(h, failures(10, attempt=2), T0, SCHEDULE, POLICY)
    assert h.open and h.breaker_opened_at == T0 and h.next_probe_at == T0 + timedelta(seconds=5) and h.probes == 0
    t1 = T0 + timedelta(seconds=5)
    h = next_health(h, failures(1, attempt=3, at=t1), t1, SCHEDULE, POLICY)  # a failed probe
    assert h.open and h.probes == 1 and h.next_probe_at == t1 + timedelta(seconds=300)
    t2 = t1 + timedelta(seconds=300)
    h = next_health(h, failures(1, attempt=4, at=t2, retry_after=3600), t2, SCHEDULE, POLICY)
    assert h.next_probe_at == t2 + timedelta(seconds=3600)  # Retry-After longer than the schedule wins
    t3 = t2 + timedelta(hours=1)
    h = next_health(h, [Outcome(5, True, False, t3)], t3, SCHEDULE, POLICY)  # the probe gets through
    assert not h.open and h.state == "healthy" and h.consecutive_failures == 0


def test_too_few_failures_or_fifo_keep_per_delivery_schedules():
    few = next_health(Health(), failures(5, 1) + failures(5, 2) + failures(5, 3), T0, SCHEDULE, POLICY)
    assert not few.open and few.consecutive_failures == 15
    fifo = next_health(Health(), failures(100, 2), T0, SCHEDULE, BreakerPolicy(50, enabled=False))
    assert not fifo.open


def test_failures_after_the_last_success_of_a_batch_start_a_new_streak():
    batch = (
        failures(3, 1)
        + [Outcome(1, True, False, T0 + timedelta(seconds=1))]
        + failures(2, 1, at=T0 + timedelta(seconds=2))
    )
    h = next_health(
        Health(consecutive_failures=99, failing_since=T0), batch, T0 + timedelta(seconds=3), SCHEDULE, POLICY
    )
    assert h.consecutive_failures == 2 and h.failing_since == T0 + timedelta(seconds=3)


def test_probe_wait_stays_at_the_last_wait_once_the_schedule_is_used_up():
    assert [probe_wait(SCHEDULE, k, None) for k in range(5)] == [5, 300, 1800, 1800, 1800]
    assert probe_wait(SCHEDULE, 0, 20) == 20


def test_where_a_delivery_goes_after_an_attempt():
    rng = random.Random(1)
    ok = after_attempt(Outcome(1, True, False, T0), SCHEDULE, False, T0, rng)
    assert ok.status == DeliveryStatus.SUCCEEDED and ok.next_attempt_at is None
    gone = after_attempt(Outcome(1, False, True, T0), SCHEDULE, False, T0, rng)
    assert gone.status == DeliveryStatus.FAILED and "410" in gone.note
    retry = after_attempt(Outcome(1, False, False, T0), SCHEDULE, False, T0, rng)
    assert retry.status == DeliveryStatus.RETRYING
    assert T0 + timedelta(seconds=4.5) <= retry.next_attempt_at <= T0 + timedelta(seconds=5.5)
    later = after_attempt(Outcome(1, False, False, T0, retry_after=60), SCHEDULE, False, T0, rng)
    assert later.next_attempt_at == T0 + timedelta(seconds=60)
    used_up = after_attempt(Outcome(4, False, False, T0), SCHEDULE, False, T0, rng)
    assert used_up.status == DeliveryStatus.FAILED and "after 4 attempts" in used_up.note
    # While the breaker is open every failure is held, even one whose own schedule is used up.
    for attempt in (1, 4):
        held = after_attempt(Outcome(attempt, False, False, T0), SCHEDULE, True, T0, rng)
        assert held.status == DeliveryStatus.HELD and held.next_attempt_at is None
