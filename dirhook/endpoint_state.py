"""Endpoint state that delivery and the API share: enabling, health, signing secrets."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dirhook.db.schema import Endpoint, EndpointSecret, EndpointStateChange, utcnow
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
        endpoint.failing_since = None
    session.add(EndpointStateChange(endpoint_id=endpoint.id, at=utcnow(), enabled=enabled, reason=reason))
    ENDPOINT_STATE_CHANGES.labels("enabled" if enabled else "disabled", cause).inc()
    return True


def record_health(session: Session, endpoint: Endpoint, succeeded: bool, now: datetime,
                  disable_after: timedelta) -> str | None:
    """Track success and failure; disable an endpoint that has failed without a single success
    for ``disable_after``. Returns the reason when this call disabled it."""
    if succeeded:
        endpoint.last_success_at = now
        endpoint.failing_since = None
        return None
    if endpoint.failing_since is None:
        endpoint.failing_since = now
        return None
    if endpoint.enabled and now - endpoint.failing_since >= disable_after:
        reason = (f"failing since {endpoint.failing_since.isoformat()} without a single success "
                  f"(disabled after {disable_after})")
        set_enabled(session, endpoint, False, reason, "failing")
        return reason
    return None


def signing_secrets(session: Session, endpoint: Endpoint, now: datetime | None = None) -> list[str]:
    """The current secret and every rotated-out one still inside its overlap window."""
    now = now or utcnow()
    old = session.scalars(select(EndpointSecret.secret).where(
        EndpointSecret.endpoint_id == endpoint.id, EndpointSecret.expires_at > now)
        .order_by(EndpointSecret.id.desc()))
    return [endpoint.secret, *old]


def rotate_secret(session: Session, endpoint: Endpoint, overlap: timedelta) -> tuple[str, datetime]:
    """A new current secret; the old one keeps signing beside it until ``now + overlap``.
    At most MAX_OLD_SECRETS old secrets are kept (the oldest go first)."""
    now = utcnow()
    expires = now + overlap
    session.add(EndpointSecret(endpoint_id=endpoint.id, secret=endpoint.secret, created_at=now, expires_at=expires))
    endpoint.secret = generate_secret()
    session.flush()
    keep = select(EndpointSecret.id).where(EndpointSecret.endpoint_id == endpoint.id) \
        .order_by(EndpointSecret.id.desc()).limit(MAX_OLD_SECRETS)
    session.execute(delete(EndpointSecret).where(EndpointSecret.endpoint_id == endpoint.id,
                                                 EndpointSecret.id.not_in(keep.scalar_subquery())))
    return endpoint.secret, expires
