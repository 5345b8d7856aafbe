"""Tables. Alembic migrations under ``dirhook/migrations`` create them; keep both in step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from dirhook.contracts import RunStatus
from dirhook.db.secrets import SealedText
from dirhook.delivery.rules import DeliveryStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database: SQLite drops the offset on the way
    in, so values come back naive; this puts UTC back (and refuses naive input)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime: pass a timezone-aware UTC value")
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime()}  # noqa: RUF012  (SQLAlchemy reads it from the class)


def rowcount(result: Any) -> int:
    """Rows an UPDATE or DELETE matched (SQLAlchemy types ``execute`` as a plain Result)."""
    count: int = result.rowcount
    return count


def table_of(model: type[Base]) -> Table:
    """A model's Core table, for bulk statements (SQLAlchemy types ``__table__`` as a FromClause)."""
    return cast(Table, model.__table__)


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """An organization's API key. Only a SHA-256 digest of the secret part is kept."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class Directory(Base):
    __tablename__ = "directories"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(20))
    # Connection settings without secrets; the secret (LDAP bind password…) is kept apart
    # so that no serializer of ``config`` can ever leak it.
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secret: Mapped[str | None] = mapped_column(SealedText("directories.secret"), default=None)
    attribute_mapping: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cursor: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    last_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    # Deletion protection: a pass that would delete more than min(count, percent of the
    # directory) of users (or of groups) holds those deletions for an operator.
    deletion_threshold_count: Mapped[int | None] = mapped_column(Integer, default=None)
    deletion_threshold_percent: Mapped[float | None] = mapped_column(Float, default=None)
    # Incremental passes on a Temporal Schedule every this many seconds (None: no schedule).
    sync_interval_seconds: Mapped[int | None] = mapped_column(Integer, default=None)
    # SCIM directories: SHA-256 of the bearer token the IdP sends (the token is shown once).
    scim_token_digest: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class HeldDeletion(Base):
    """A deletion a pass found but held back, awaiting an operator's approval."""

    __tablename__ = "held_deletions"
    __table_args__ = (UniqueConstraint("directory_id", "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    directory_id: Mapped[str] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"), index=True)
    object_type: Mapped[str] = mapped_column(String(10))  # user | group
    object_id: Mapped[str] = mapped_column(String(40))
    held_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("directory_id", "external_id"),
        Index("ix_users_directory_ref", "directory_id", "source_ref"),
        Index("ix_users_directory_record_hash", "directory_id", "record_hash"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    directory_id: Mapped[str] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(255))
    source_ref: Mapped[str | None] = mapped_column(String(1024), default=None)
    # How a pass recognizes the user unchanged without normalizing it (dirhook.sync.unchanged):
    # the digest of its record as read, and of everything its state is made of.
    record_hash: Mapped[str | None] = mapped_column(String(32), default=None)
    inputs_hash: Mapped[str | None] = mapped_column(String(32), default=None)
    # What the provider gave, normalized (NormalizedUser minus ids) ...
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The source's own record (values decoded to text), to normalize again when the
    # directory's attribute mapping changes, without asking the directory.
    source_record: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # ... and the last state sent to receivers (DirectoryUser minus id/version/updated_at).
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    content_hash: Mapped[str] = mapped_column(String(64), default="")
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Group(Base):
    __tablename__ = "groups"
    __table_args__ = (
        UniqueConstraint("directory_id", "external_id"),
        Index("ix_groups_directory_ref", "directory_id", "source_ref"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    directory_id: Mapped[str] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(255))
    source_ref: Mapped[str | None] = mapped_column(String(1024), default=None)
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    content_hash: Mapped[str] = mapped_column(String(64), default="")
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (Index("ix_memberships_user", "user_id"),)

    group_id: Mapped[str] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    directory_id: Mapped[str] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"), index=True)


class GroupNesting(Base):
    """A group that is a member of another group (its members gain the parent's membership)."""

    __tablename__ = "group_nesting"
    __table_args__ = (Index("ix_group_nesting_child", "child_group_id"),)

    parent_group_id: Mapped[str] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    child_group_id: Mapped[str] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    directory_id: Mapped[str] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"), index=True)


class Role(Base):
    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("organization_id", "slug"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(1000), default=None)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    # The role of users no mapping gives a role (at most one per organization).
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RoleMappingRow(Base):
    """Group -> role, per directory: by the group's external id, or by name (exact or glob)."""

    __tablename__ = "role_mappings"
    __table_args__ = (UniqueConstraint("directory_id", "role_id", "match", "pattern"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    directory_id: Mapped[str] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"), index=True)
    role_id: Mapped[str] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"), index=True)
    match: Mapped[str] = mapped_column(String(20))
    pattern: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EventRow(Base):
    """The outbox: written in the same transaction as the state it describes."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("directory_id", "sequence"),)

    pk: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    directory_id: Mapped[str] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"))
    organization_id: Mapped[str] = mapped_column(String(40), index=True)
    sequence: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The exact JSON body receivers get, serialized once at commit.
    body: Mapped[str] = mapped_column(Text)


class Endpoint(Base):
    __tablename__ = "endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(500), default=None)
    event_types: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    directory_ids: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    retry_schedule: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(500), default=None)
    # The current signing secret; rotated-out ones live in endpoint_secrets until they expire.
    secret: Mapped[str] = mapped_column(SealedText("endpoints.secret"))
    # What the receiver asks for besides the signature (dirhook/endpoint_auth.py), write-only:
    # custom headers as JSON, and a client certificate with its key (PEM) for mutual TLS.
    headers: Mapped[str | None] = mapped_column(SealedText("endpoints.headers"), default=None)
    client_certificate: Mapped[str | None] = mapped_column(SealedText("endpoints.client_certificate"), default=None)
    # Limits and modes; None means the deployment's default (Settings).
    rate_limit_per_second: Mapped[float | None] = mapped_column(Float, default=None)
    max_concurrency: Mapped[int | None] = mapped_column(Integer, default=None)
    max_payload_bytes: Mapped[int | None] = mapped_column(Integer, default=None)
    timeout_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    disable_after_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    fifo: Mapped[bool] = mapped_column(Boolean, default=False)
    # Health: when it last succeeded, and since when it has failed without a success.
    last_success_at: Mapped[datetime | None] = mapped_column(default=None)
    failing_since: Mapped[datetime | None] = mapped_column(default=None)
    # The circuit breaker (dirhook/delivery/rules.py): failed attempts since the last success;
    # while open (opened_at set), only a probe goes out, at next_probe_at.
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    breaker_opened_at: Mapped[datetime | None] = mapped_column(default=None)
    next_probe_at: Mapped[datetime | None] = mapped_column(default=None)
    probes: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class EndpointSecret(Base):
    """A rotated-out signing secret, still sent beside the new one until it expires."""

    __tablename__ = "endpoint_secrets"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"), index=True)
    secret: Mapped[str] = mapped_column(SealedText("endpoint_secrets.secret"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class EndpointStateChange(Base):
    """Every enable/disable of an endpoint, with who or what caused it."""

    __tablename__ = "endpoint_state_changes"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    enabled: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(500))


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_pk"),
        Index("ix_deliveries_endpoint_status", "endpoint_id", "status", "id"),
        # Due retries: WHERE endpoint_id = ? AND status = 'retrying' AND next_attempt_at <= now.
        Index("ix_deliveries_endpoint_due", "endpoint_id", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    event_pk: Mapped[int] = mapped_column(ForeignKey("events.pk", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(40))
    directory_id: Mapped[str] = mapped_column(String(40))
    # dirhook.delivery.rules.DeliveryStatus: pending -> succeeded | retrying (at
    # next_attempt_at) | held (by the circuit breaker) | failed; skipped: held back (endpoint
    # disabled, or skipped by an operator), kept for recovery.
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    # When the retry schedule planned it (Temporal's clock); started_at is when it ran.
    scheduled_for: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime] = mapped_column()
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    latency_ms: Mapped[float] = mapped_column(Float)
    response_body: Mapped[str | None] = mapped_column(Text, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)


class SyncRun(Base):
    """One sync pass (one activity attempt), for the API and for proving passes never overlap."""

    __tablename__ = "sync_runs"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    directory_id: Mapped[str] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"), index=True)
    workflow_id: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[str] = mapped_column(String(100))
    mode: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=RunStatus.RUNNING)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)


class GoogleChannel(Base):
    """A push channel Google holds for a Google Workspace directory: users.watch (one per
    event) or the Reports API's activities.watch (admin events: groups and members). The
    token Google echoes in X-Goog-Channel-Token is kept as a digest only."""

    __tablename__ = "google_channels"

    channel_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    directory_id: Mapped[str] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(40))  # "users.add", …, "activities.admin"
    resource_id: Mapped[str] = mapped_column(String(255))
    token_digest: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GoogleNotification(Base):
    """What a push notification named, until a pass has read it: a user (by id) or a group
    (by address). A committed pass's cursor lists the ids it read; the next pass deletes them."""

    __tablename__ = "google_notifications"
    __table_args__ = (Index("ix_google_notifications_directory", "directory_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    directory_id: Mapped[str] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))  # "user" | "group"
    object_key: Mapped[str] = mapped_column(String(320))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
