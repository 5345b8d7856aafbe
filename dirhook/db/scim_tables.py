"""The storage of the SCIM protocol (dirhook/scim): what an IdP pushed to a SCIM directory.

The normalized users and groups are derived from these by the sync engine, like from any
other source. A resource's body is stored whole except a group's members, which are rows of
their own (one row per membership: adding one member to a 50,000-member group writes one
row), and the values an IdP filters on are indexed beside the body, so listings, lookups
and pages are answered by SQL without reading the other resources.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dirhook.db.schema import Base, utcnow


class ScimResource(Base):
    __tablename__ = "scim_resources"
    __table_args__ = (
        UniqueConstraint("directory_id", "resource_type", "unique_key"),
        Index("ix_scim_resources_match", "directory_id", "resource_type", "match_key"),
        Index("ix_scim_resources_external", "directory_id", "resource_type", "external_id"),
        # A page in the default order (by id; hidden users skipped inside the index), and
        # IdPs' `meta.lastModified gt …` polls.
        Index("ix_scim_resources_order", "directory_id", "resource_type", "id", "hidden_since"),
        Index("ix_scim_resources_modified", "directory_id", "resource_type", "updated_at"),
    )

    directory_id: Mapped[str] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource_type: Mapped[str] = mapped_column(String(20))
    # userName (User) or displayName (Group), as SCIM compares it (case-folded): the
    # IdPs' existence checks (`userName eq "…"`) read this index.
    match_key: Mapped[str | None] = mapped_column(String(512), default=None)
    # The same for attributes whose uniqueness is "server" (userName); NULL for groups.
    unique_key: Mapped[str | None] = mapped_column(String(512), default=None)
    external_id: Mapped[str | None] = mapped_column(String(255), default=None)
    # The body without a group's members (those are ScimMember rows).
    body: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[str] = mapped_column(String(64))
    # Counts a group's membership changes: part of its version, which cannot hash members
    # it does not read.
    members_revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Deleted by the IdP, the deletion not yet carried out (dirhook/scim/deprovisions.py): the
    # SCIM API no longer shows it, a full pass still reads it.
    hidden_since: Mapped[datetime | None] = mapped_column(default=None)


class ScimDeprovision(Base):
    """An IdP's deletion or deactivation of a user, on its way through deletion protection."""

    __tablename__ = "scim_deprovisions"
    __table_args__ = (Index("ix_scim_deprovisions_state", "directory_id", "state"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    directory_id: Mapped[str] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"))
    resource_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(12))  # delete | deactivate
    state: Mapped[str] = mapped_column(String(10))  # pending | held | applied
    # What rejection restores: the userName's unique key (delete), the active value (deactivate).
    previous: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(default=None)


class ScimMember(Base):
    """One member of a SCIM group, as the IdP gave it."""

    __tablename__ = "scim_members"
    __table_args__ = (Index("ix_scim_members_member", "directory_id", "member_id"),)

    directory_id: Mapped[str] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_type: Mapped[str | None] = mapped_column(String(10), default=None)  # User | Group
    display: Mapped[str | None] = mapped_column(String(512), default=None)


class ScimValue(Base):
    """A value a filter compares, as SCIM compares it (``emails.value``, a user's
    ``displayName``): what `emails[value eq "…"]` reads instead of every body."""

    __tablename__ = "scim_values"
    __table_args__ = (Index("ix_scim_values_lookup", "directory_id", "attribute", "value"),)

    directory_id: Mapped[str] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    attribute: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(512), primary_key=True)
