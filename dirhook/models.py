"""The normalized model every provider produces, and the event envelope (event contract v1, README
"Webhook events")."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

EVENT_TYPES = (
    "user.created",
    "user.updated",
    "user.deleted",
    "group.created",
    "group.updated",
    "group.deleted",
    "group.user_added",
    "group.user_removed",
    "directory.sync_completed",
    "endpoint.test",
)

ProviderName = Literal["ldap", "scim", "entra", "google"]


class Email(BaseModel):
    value: str
    primary: bool = False
    type: str | None = None


class UserProfile(BaseModel):
    """A user's fields that come from the directory, the same in what a provider reads
    (NormalizedUser) and in what receivers get (DirectoryUser): declared once, here."""

    external_id: str
    username: str | None = None
    emails: list[Email] = Field(default_factory=list)
    given_name: str | None = None
    family_name: str | None = None
    display_name: str | None = None
    title: str | None = None
    department: str | None = None
    active: bool = True


# The profile fields, in order (what a mapping may target, what a user's state copies).
PROFILE_FIELDS: tuple[str, ...] = tuple(UserProfile.model_fields)


class NormalizedUser(UserProfile):
    """What a provider knows about one user, before dirhook adds ids, groups and roles."""

    model_config = ConfigDict(extra="forbid")

    custom_attributes: dict[str, Any] = Field(default_factory=dict)
    raw_attributes: dict[str, Any] = Field(default_factory=dict)
    # Where the source points at this object and at its manager (an LDAP DN); used to
    # resolve references, never sent to receivers.
    source_ref: str | None = None
    manager_ref: str | None = None


class NormalizedGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: str
    name: str
    description: str | None = None
    raw_attributes: dict[str, Any] = Field(default_factory=dict)
    source_ref: str | None = None
    # References (DNs for LDAP) of the direct members, as the source lists them.
    member_refs: list[str] = Field(default_factory=list)


class GroupRef(BaseModel):
    id: str
    name: str


class RoleRef(BaseModel):
    slug: str


class DirectoryUser(UserProfile):
    """A user as receivers see it (``data`` of user events)."""

    object: Literal["user"] = "user"
    id: str
    directory_id: str
    organization_id: str
    manager_id: str | None = None
    groups: list[GroupRef] = Field(default_factory=list)
    roles: list[RoleRef] = Field(default_factory=list)
    custom_attributes: dict[str, Any] = Field(default_factory=dict)
    raw_attributes: dict[str, Any] = Field(default_factory=dict)
    updated_at: datetime
    version: int


class DirectoryGroup(BaseModel):
    object: Literal["group"] = "group"
    id: str
    directory_id: str
    organization_id: str
    external_id: str
    name: str
    description: str | None = None
    raw_attributes: dict[str, Any] = Field(default_factory=dict)
    updated_at: datetime
    version: int


class Event(BaseModel):
    """The webhook body and the Events API item."""

    id: str
    type: str
    timestamp: datetime
    organization_id: str
    directory_id: str
    sequence: int
    data: dict[str, Any]
    previous_attributes: dict[str, Any] | None = None
