"""Directories, their passes, schedules and held deletions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dirhook.providers.entra_config import EntraConfig
from dirhook.providers.ldap import LdapConfig


class DirectoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    organization_id: str | None = Field(default=None, description="defaults to the 'default' organization")
    provider: Literal["ldap", "entra", "scim"] = Field(
        default="ldap",
        description="ldap: dirhook reads the directory; entra: dirhook reads Microsoft Graph; "
        "scim: the IdP pushes to /scim/v2/{id}/",
    )
    ldap: LdapConfig | None = Field(default=None, description="required for (and only for) provider ldap")
    bind_password: str | None = Field(default=None, description="write-only: never returned")
    entra: EntraConfig | None = Field(default=None, description="required for (and only for) provider entra")
    client_secret: str | None = Field(
        default=None,
        description="the Entra app's client secret, or with "
        "entra.credential 'certificate' its PEM (key and certificate); write-only",
    )
    attribute_mapping: dict[str, dict[str, Any]] | None = Field(
        default=None, description="per kind (user/group): target field -> {source, transform}; laid over the defaults"
    )
    sync_interval_seconds: int | None = Field(
        default=None,
        ge=0,
        le=7 * 86400,
        description="passes on a schedule this often (ldap: 900 by default; scim: none); 0: none",
    )

    @model_validator(mode="after")
    def _provider_settings(self) -> DirectoryIn:
        given = {
            name for name in ("ldap", "bind_password", "entra", "client_secret") if getattr(self, name) is not None
        }
        own = {"ldap": {"ldap", "bind_password"}, "entra": {"entra", "client_secret"}, "scim": set()}[self.provider]
        if given - own:
            what = {"ldap": "an LDAP", "entra": "an Entra", "scim": "a SCIM"}[self.provider]
            raise ValueError(
                f"{what} directory takes no {', '.join(sorted(given - own))}"
                + (" (the IdP pushes to it)" if self.provider == "scim" else "")
            )
        if self.provider == "ldap" and self.ldap is None:
            raise ValueError("ldap: required for an LDAP directory")
        if self.provider == "entra" and (self.entra is None or not self.client_secret):
            raise ValueError("entra and client_secret: required for an Entra directory")
        return self


class DirectoryPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    ldap: dict[str, Any] | None = Field(default=None, description="fields to change; the result is validated whole")
    bind_password: str | None = Field(default=None, description="write-only: never returned")
    entra: dict[str, Any] | None = Field(default=None, description="Entra settings to change; validated whole")
    client_secret: str | None = Field(default=None, description="a new Entra client secret; write-only")
    attribute_mapping: dict[str, dict[str, Any]] | None = None
    deletion_threshold_count: int | None = Field(default=None, ge=0, description="hold a pass deleting more (500)")
    deletion_threshold_percent: float | None = Field(
        default=None, ge=0, le=100, description="… or more than this % of the directory (10)"
    )
    sync_interval_seconds: int | None = Field(
        default=None, ge=0, le=7 * 86400, description="scheduled incremental passes; 0 removes the schedule"
    )


class HeldDeletionsOut(BaseModel):
    directory_id: str
    awaiting_approval: bool
    users: int
    groups: int
    sample: list[dict[str, Any]] = Field(description="up to 20 of the held users and groups")


class DeletionDecision(BaseModel):
    directory_id: str
    outcome: str


class DirectoryOut(BaseModel):
    id: str
    organization_id: str
    name: str
    provider: str
    config: dict[str, Any]
    has_bind_password: bool
    has_client_secret: bool = False
    attribute_mapping: dict[str, Any]
    cursor: dict[str, Any] | None
    deletion_threshold_count: int | None = None
    deletion_threshold_percent: float | None = None
    sync_interval_seconds: int | None = None
    scim_path: str | None = Field(default=None, description="SCIM directories: where the IdP sends its requests")
    created_at: datetime


class DirectoryCreated(DirectoryOut):
    scim_base_url: str | None = Field(default=None, description="SCIM directories: the IdP's tenant URL")
    scim_token: str | None = Field(default=None, description="SCIM directories: the IdP's bearer token, shown once")


class ScimTokenOut(BaseModel):
    directory_id: str
    scim_base_url: str
    scim_token: str = Field(description="the new bearer token, shown once; the previous one stops working now")


class ScheduleOut(BaseModel):
    directory_id: str
    schedule_id: str
    interval_seconds: int | None
    paused: bool
    next_runs: list[datetime]
    recent_runs: list[datetime]


class SyncStarted(BaseModel):
    directory_id: str
    workflow_id: str
    run_id: str | None
    mode: str
    temporal_ui_url: str | None = None


class SyncRunOut(BaseModel):
    id: int
    workflow_id: str
    run_id: str
    mode: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    error: str | None
    counts: dict[str, Any]


class SyncStatusOut(BaseModel):
    directory_id: str
    workflow_id: str
    workflow_status: str | None = Field(description="RUNNING, COMPLETED, FAILED… or null if never run")
    state: str | None
    progress: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    last_run: SyncRunOut | None = None
