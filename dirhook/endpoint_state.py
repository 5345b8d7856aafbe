"""Endpoint state that delivery and the API share: enabling, health, the breaker's hold, signing secrets."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from dirhook.db.schema import Delivery, Endpoint, EndpointSecret, EndpointStateChange, rowcount, utcnow
from dirhook.delivery.rules import DeliveryStatus
from dirhook.metrics import ENDPOINT_STATE_CHANGES
from dirhook.signing import generate_secret

MAX_OLD_SECRETS = 5


GONE_REASON = "receiver answered 410 Gone"


def set_enabled(session: Session, endpoint: Endpoint, enabled: bool, reason: str, cause: str) -> bool:
    """Enable or disable, recording why (``reason`` for people, ``cause`` — operator, gone,
    failing — for metrics); returns whether anything changed."""
    if endpoint.enabled == enabled:
        return False
    endpoint.enabled = enabled
    endpoint.disabled_reason = None if enabled else reason
    if enabled:
        reset_health(session, endpoint)
    session.add(EndpointStateChange(endpoint_id=endpoint.id, at=utcnow(), enabled=enabled, reason=reason))
    ENDPOINT_STATE_CHANGES.labels("enabled" if enabled else "disabled", cause).inc()
    return True


def disable_if_failing_too_long(
    session: Session, endpoint: Endpoint, now: datetime, disable_after: timedelta
) -> str | None:
    """Disable an endpoint that has failed without a single success for ``disable_after``
    (its deliveries are kept for recovery). Returns the reason when this call disabled it."""
    since = endpoint.failing_since
    if endpoint.enabled and since is not None and now - since >= disable_after:
        reason = f"failing since {since.isoformat()} without a single success (disabled after {disable_after})"
        set_enabled(session, endpoint, False, reason, "failing")
        return reason
    return None


def release_held(session: Session, endpoint_id: str, now: datetime) -> int:
    """Everything the circuit breaker held goes back to pending: sent oldest first, at full speed."""
    return rowcount(
        session.execute(
            update(Delivery)
            .where(Delivery.endpoint_id == endpoint_id, Delivery.status == DeliveryStatus.HELD)
            .values(status=DeliveryStatus.PENDING, next_attempt_at=None, updated_at=now)
        )
    )


def reset_health(session: Session, endpoint: Endpoint) -> None:
    """A fresh start (an operator enabled the endpoint): no failure streak, breaker closed,
    whatever it held due now."""
    endpoint.failing_since, endpoint.consecutive_failures = None, 0
    endpoint.breaker_opened_at, endpoint.next_probe_at, endpoint.probes = None, None, 0
    release_held(session, endpoint.id, utcnow())


def signing_secrets(session: Session, endpoint: Endpoint, now: datetime | None = None) -> list[str]:
    """The current secret and every rotated-out one still inside its overlap window."""
    now = now or utcnow()
    old = session.scalars(
        select(EndpointSecret.secret)
        .where(EndpointSecret.endpoint_id == endpoint.id, EndpointSecret.expires_at > now)
        .order_by(EndpointSecret.id.desc())
    )
    return [endpoint.secret, *old]


def rotate_secret(session: Session, endpoint: Endpoint, overlap: timedelta) -> tuple[str, datetime]:
    """A new current secret; the old one keeps signing beside it until ``now + overlap``.
    At most MAX_OLD_SECRETS old secrets are kept (the oldest go first)."""
    now = utcnow()
    expires = now + overlap
    session.add(EndpointSecret(endpoint_id=endpoint.id, secret=endpoint.secret, created_at=now, expires_at=expires))
    endpoint.secret = generate_secret()
    session.flush()
    keep = (
        select(EndpointSecret.id)
        .where(EndpointSecret.endpoint_id == endpoint.id)
        .order_by(EndpointSecret.id.desc())
        .limit(MAX_OLD_SECRETS)
    )
    session.execute(
        delete(EndpointSecret).where(
            EndpointSecret.endpoint_id == endpoint.id, EndpointSecret.id.not_in(keep.scalar_subquery())
        )
    )
    return endpoint.secret, expires
