import asyncio
import random
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from standardwebhooks.webhooks import Webhook as StdWebhook
from standardwebhooks.webhooks import WebhookVerificationError as StdVerificationError
from svix.webhooks import Webhook as SvixWebhook, WebhookVerificationError

from dirhook.config import DEFAULT_RETRY_SCHEDULE
from dirhook.delivery import Pacer, parse_retry_after, retry_delay
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
    headers = Signer([secret]).headers("evt_3", "{}", when=datetime.now(timezone.utc) - timedelta(minutes=10))
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
    now = datetime(2026, 11, 29, tzinfo=timezone.utc)
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
