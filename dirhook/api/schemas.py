"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from dirhook.delivery.rules import DeliveryStatus
from dirhook.providers.entra import EntraConfig
from dirhook.providers.ldap import LdapConfig
from dirhook.subscriptions import validate_event_type_patterns

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = Field(description="pass as `after` to get the next page")
    has_more: bool


class OrganizationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)


class OrganizationOut(BaseModel):
    id: str
    name: str
    created_at: datetime


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, description="what the key is for, e.g. 'HR portal'")


class ApiKeyOut(BaseModel):
    id: str
    organization_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the bearer token; shown once, only its digest is stored")


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


class EndpointSettings(BaseModel):
    """What an endpoint receives and how; shared by creation and PATCH."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=500)
    event_types: list[str] | None = Field(
        default=None, description="exact types or wildcards like user.*; all when empty"
    )
    directory_ids: list[str] | None = Field(
        default=None, description="only these directories; all of the organization when empty"
    )
    retry_schedule: list[float] | None = Field(
        default=None, description="seconds to wait before each retry; default: 5s, 5m, 30m, 2h, 5h, 10h, 10h"
    )
    rate_limit_per_second: float | None = Field(
        default=None, gt=0, le=10_000, description="messages per second at most"
    )
    max_concurrency: int | None = Field(default=None, ge=1, le=200, description="requests in flight at most")
    max_payload_bytes: int | None = Field(
        default=None, ge=1024, le=10 * 1024 * 1024, description="larger events fail at creation with a clear error"
    )
    timeout_seconds: float | None = Field(default=None, gt=0, le=60, description="a 2xx within this is success (15 s)")
    disable_after_seconds: float | None = Field(
        default=None, ge=60, description="disable after failing this long without a success (5 days)"
    )
    fifo: bool | None = Field(
        default=None, description="strict sequence order per directory; a failing event blocks later ones"
    )

    @field_validator("event_types")
    @classmethod
    def _types(cls, v: list[str] | None) -> list[str] | None:
        return validate_event_type_patterns(v) if v else None

    @field_validator("retry_schedule")
    @classmethod
    def _schedule(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return None
        if not 1 <= len(v) <= 20 or any(x < 0 or x > 7 * 86400 for x in v):
            raise ValueError("1 to 20 waits, each between 0 and 604800 seconds")
        return v


def _http_url(v: str) -> str:
    from dirhook.ssrf import UnsafeURL, check_url_syntax

    try:
        check_url_syntax(v)
    except UnsafeURL as exc:
        raise ValueError(str(exc)) from None
    return v


class EndpointIn(EndpointSettings):
    url: str = Field(max_length=2048)
    organization_id: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _http_url(v)


class EndpointPatch(EndpointSettings):
    url: str | None = Field(default=None, max_length=2048)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return _http_url(v) if v is not None else None


class EndpointOut(BaseModel):
    id: str
    organization_id: str
    url: str
    description: str | None
    event_types: list[str] | None
    directory_ids: list[str] | None
    retry_schedule: list[float] | None
    rate_limit_per_second: float | None
    max_concurrency: int | None
    max_payload_bytes: int | None
    timeout_seconds: float | None
    disable_after_seconds: float | None
    fifo: bool
    enabled: bool
    disabled_reason: str | None
    last_success_at: datetime | None
    failing_since: datetime | None
    health: Literal["healthy", "failing", "circuit_open"] = Field(
        default="healthy", description="circuit_open: only a probe goes out, at next_probe_at; the rest is held"
    )
    consecutive_failures: int = Field(default=0, description="failed attempts since the last success")
    breaker_opened_at: datetime | None = None
    next_probe_at: datetime | None = None
    delivery_counts: dict[str, int] | None = Field(
        default=None, description="deliveries by status (GET of one endpoint only)"
    )
    created_at: datetime


class EndpointCreated(EndpointOut):
    secret: str = Field(description="the signing secret, shown only this once")


class SecretRotated(BaseModel):
    endpoint_id: str
    secret: str = Field(description="the new signing secret, shown only this once")
    previous_secret_expires_at: datetime = Field(description="until then, requests carry both signatures")


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    overlap_seconds: float | None = Field(
        default=None, ge=0, le=7 * 86400, description="how long the old secret keeps signing (24 h)"
    )


class DisableIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="disabled by an operator", min_length=1, max_length=500)


class StateChangeOut(BaseModel):
    at: datetime
    enabled: bool
    reason: str


class RecoverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: datetime = Field(
        description="requeue every delivery not yet succeeded (failed, skipped, retrying, "
        "held) created since then, to be sent now"
    )


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    directory_id: str
    since_sequence: int | None = Field(default=None, ge=0, description="events with a sequence at least this")
    since: datetime | None = Field(default=None, description="events created at or after this")


class Requeued(BaseModel):
    endpoint_id: str
    requeued: int


class AttemptOut(BaseModel):
    attempt: int
    scheduled_for: datetime | None = Field(default=None, description="when the retry schedule planned it")
    started_at: datetime
    status_code: int | None
    latency_ms: float
    response_body: str | None
    error: str | None


class DeliveryOut(BaseModel):
    id: int
    endpoint_id: str
    event_id: str
    event_type: str
    directory_id: str
    status: DeliveryStatus = Field(
        description="pending: due now; retrying: due at next_attempt_at; held: by the "
        "endpoint's open circuit breaker; succeeded; failed: for good; "
        "skipped: held back (endpoint disabled, or skipped)"
    )
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    attempt_log: list[AttemptOut]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: str
    temporal: str


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9_.:-]{0,99}$", description="what receivers get, e.g. `admin`")
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    priority: int = Field(default=0, ge=-1000, le=1000, description="higher wins `role` when a user has several")
    is_default: bool = Field(
        default=False, description="the role of users no mapping gives a role (one per organization)"
    )
    organization_id: str | None = None


class RolePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    priority: int | None = Field(default=None, ge=-1000, le=1000)
    is_default: bool | None = None


class RoleOut(BaseModel):
    id: str
    organization_id: str
    slug: str
    name: str
    description: str | None
    priority: int
    is_default: bool
    created_at: datetime


class RoleMappingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str = Field(description="the role's slug")
    match: Literal["external_id", "name"] = Field(description="match the group's external id (exact) or its name")
    pattern: str = Field(min_length=1, max_length=500, description="for `name`: exact, or a glob like `eng-*`")

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str, info: ValidationInfo) -> str:
        from dirhook.roles import validate_glob

        if info.data.get("match") == "name":
            try:
                validate_glob(v)
            except ValueError as exc:
                raise ValueError(f"malformed glob: {exc}") from None
        return v


class RoleMappingOut(BaseModel):
    id: str
    directory_id: str
    role: str
    match: str
    pattern: str
    created_at: datetime
