"""Directories, their passes, schedules and held deletions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from dirhook.normalize import GROUP_FIELDS, READ_ONLY_FIELDS, TRANSFORMS, USER_FIELDS
from dirhook.providers.entra_config import EntraConfig
from dirhook.providers.google_config import GoogleConfig, parse_service_account_key
from dirhook.providers.ldap import LdapConfig
from dirhook.strict_json import StrictJsonModel

# Where and how a stored secret is sent (dirhook.services.directory_rules.SECRET_TARGETS).
LDAP_SECRET_TARGETS = ("url", "bind_dn", "start_tls", "verify_tls")
ENTRA_SECRET_TARGETS = ("tenant_id", "client_id", "authority_host", "graph_base_url")
GOOGLE_SECRET_TARGETS = ("admin_email", "token_uri", "api_base_url")

_ABSENT: JsonValue = {"type": "null"}
_GIVEN: JsonValue = {"not": {"type": "null"}}
# The provider rule of _provider_settings, in the published schema (so a client, or a
# fuzzer, knows which settings go with which provider).
# Each provider's settings and secret, by provider (the rest are absent for it).
OWN_FIELDS = {
    "ldap": ("ldap", "bind_password"),
    "entra": ("entra", "client_secret"),
    "google": ("google", "service_account_key"),
    "scim": (),
}
SOURCE_FIELDS = tuple(name for names in OWN_FIELDS.values() for name in names)


def _shape(title: str, provider: str, required: tuple[str, ...], given: dict[str, JsonValue]) -> JsonValue:
    absent: dict[str, JsonValue] = {f: _ABSENT for f in SOURCE_FIELDS if f not in OWN_FIELDS[provider]}
    properties: dict[str, JsonValue] = {"provider": {"const": provider}, **given, **absent}
    return {"title": title, "required": list(required), "properties": properties}


# The provider rule of _provider_settings, in the published schema (so a client, or a
# fuzzer, knows which settings go with which provider).
PROVIDER_SHAPES: list[JsonValue] = [
    # provider may be left out for LDAP (the default): "ldap" is what is required.
    _shape("LDAP or Active Directory", "ldap", ("ldap",), {"ldap": _GIVEN}),
    _shape(
        "Microsoft Entra ID",
        "entra",
        ("provider", "entra", "client_secret"),
        {"entra": _GIVEN, "client_secret": {"type": "string", "minLength": 1}},
    ),
    _shape(
        "Google Workspace",
        "google",
        ("provider", "google", "service_account_key"),
        {"google": _GIVEN, "service_account_key": {"type": "string", "minLength": 1}},
    ),
    _shape("SCIM (the IdP pushes)", "scim", ("provider",), {}),
]


def _mapping_kind(fields: tuple[str, ...]) -> JsonValue:
    targets: list[JsonValue] = [f for f in fields if f not in READ_ONLY_FIELDS]
    transforms: list[JsonValue] = [*sorted(TRANSFORMS)]
    return {
        "type": "object",
        "propertyNames": {"anyOf": [{"enum": targets}, {"pattern": r"^custom_attributes\..+"}]},
        "additionalProperties": {
            "type": "object",
            "required": ["source"],
            "additionalProperties": False,
            "properties": {
                "source": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                "transform": {"enum": transforms},
            },
        },
    }


# validate_mapping's rules (dirhook/normalize.py), published: per kind, which targets and transforms.
MAPPING_SCHEMA: dict[str, JsonValue] = {
    "additionalProperties": False,
    "properties": {"user": _mapping_kind(USER_FIELDS), "group": _mapping_kind(GROUP_FIELDS)},
}


def _partial(model: type[BaseModel]) -> dict[str, JsonValue]:
    """A PATCH of a provider's settings: any of its fields, none required."""
    properties: JsonValue = model.model_json_schema()["properties"]
    return {"additionalProperties": False, "properties": properties}


class DirectoryIn(StrictJsonModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": PROVIDER_SHAPES})

    name: str = Field(min_length=1, max_length=200)
    organization_id: str | None = Field(default=None, description="defaults to the 'default' organization")
    provider: Literal["ldap", "entra", "google", "scim"] = Field(
        default="ldap",
        description="ldap: dirhook reads the directory; entra: dirhook reads Microsoft Graph; "
        "google: dirhook reads Google Workspace (Admin SDK); scim: the IdP pushes to /scim/v2/{id}/",
    )
    ldap: LdapConfig | None = Field(default=None, description="required for (and only for) provider ldap")
    bind_password: str | None = Field(default=None, description="write-only: never returned")
    entra: EntraConfig | None = Field(default=None, description="required for (and only for) provider entra")
    client_secret: str | None = Field(
        default=None,
        description="the Entra app's client secret, or with "
        "entra.credential 'certificate' its PEM (key and certificate); write-only",
    )
    google: GoogleConfig | None = Field(default=None, description="required for (and only for) provider google")
    service_account_key: str | None = Field(
        default=None,
        description="the Google service account's JSON key file, whole (domain-wide delegation); write-only",
    )
    attribute_mapping: dict[str, dict[str, Any]] | None = Field(
        default=None,
        json_schema_extra=MAPPING_SCHEMA,
        description="per kind (user/group): target field -> {source, transform}; laid over the defaults",
    )
    sync_interval_seconds: int | None = Field(
        default=None,
        ge=0,
        le=7 * 86400,
        description="passes on a schedule this often (ldap: 900 by default; scim: none); 0: none",
    )

    @model_validator(mode="after")
    def _provider_settings(self) -> DirectoryIn:
        given = {name for name in SOURCE_FIELDS if getattr(self, name) is not None}
        own = set(OWN_FIELDS[self.provider])
        if given - own:
            what = {"ldap": "an LDAP", "entra": "an Entra", "google": "a Google", "scim": "a SCIM"}[self.provider]
            raise ValueError(
                f"{what} directory takes no {', '.join(sorted(given - own))}"
                + (" (the IdP pushes to it)" if self.provider == "scim" else "")
            )
        if self.provider == "ldap" and self.ldap is None:
            raise ValueError("ldap: required for an LDAP directory")
        if self.provider == "entra" and (self.entra is None or not self.client_secret):
            raise ValueError("entra and client_secret: required for an Entra directory")
        if self.provider == "google":
            if self.google is None or not self.service_account_key:
                raise ValueError("google and service_account_key: required for a Google Workspace directory")
            parse_service_account_key(self.service_account_key)  # its ValueError never holds the key
        return self


def _secret_follows(settings: str, secret: str, moves: tuple[str, ...]) -> JsonValue:
    # JSON Schema's if/then: naming one of these settings requires the secret.
    named: list[JsonValue] = [{"required": [m]} for m in moves]
    return {
        "if": {"required": [settings], "properties": {settings: {"type": "object", "anyOf": named}}},
        "then": {"required": [secret], "properties": {secret: {"type": "string"}}},
    }


class DirectoryPatch(StrictJsonModel):
    # Stricter than the rule (which asks for the secret only when the value changes), so a
    # request valid by the schema is never refused for it.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "allOf": [
                _secret_follows("ldap", "bind_password", LDAP_SECRET_TARGETS),
                _secret_follows("entra", "client_secret", ENTRA_SECRET_TARGETS),
                _secret_follows("google", "service_account_key", GOOGLE_SECRET_TARGETS),
            ]
        },
    )

    name: str | None = Field(default=None, min_length=1, max_length=200)
    ldap: dict[str, Any] | None = Field(
        default=None,
        description="fields to change; the result is validated whole",
        json_schema_extra=_partial(LdapConfig),
    )
    bind_password: str | None = Field(default=None, description="write-only: never returned")
    entra: dict[str, Any] | None = Field(
        default=None,
        description="Entra settings to change; validated whole",
        json_schema_extra=_partial(EntraConfig),
    )
    client_secret: str | None = Field(default=None, description="a new Entra client secret; write-only")
    google: dict[str, Any] | None = Field(
        default=None,
        description="Google Workspace settings to change; validated whole",
        json_schema_extra=_partial(GoogleConfig),
    )
    service_account_key: str | None = Field(
        default=None, description="a new Google service account key (the JSON file); write-only"
    )
    attribute_mapping: dict[str, dict[str, Any]] | None = Field(default=None, json_schema_extra=MAPPING_SCHEMA)
    deletion_threshold_count: int | None = Field(
        default=None, ge=0, le=2**31 - 1, description="hold a pass deleting more (500)"
    )
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
    has_service_account_key: bool = False
    attribute_mapping: dict[str, Any]
    cursor: dict[str, Any] | None
    deletion_threshold_count: int | None = None
    deletion_threshold_percent: float | None = None
    sync_interval_seconds: int | None = None
    scim_path: str | None = Field(default=None, description="SCIM directories: where the IdP sends its requests")
    created_at: datetime


class ConnectionTestOut(BaseModel):
    """What a pass would find (``ok``), or why the source refused (``error``)."""

    ok: bool
    users: int | None = Field(None, description="users matching the directory's filter and scope")
    groups: int | None = None
    at_least: bool = Field(False, description="the counts stopped early (a large directory): at least this many")
    summary: str | None = None
    notes: list[str] = Field(default_factory=list)
    error: str | None = Field(None, description="the source's own error, for the person who can fix it")
    error_kind: Literal["unavailable", "auth", "config"] | None = Field(
        None, description="unavailable: host, port or network; auth: the credentials; config: bases, filters"
    )


class DirectoryCreated(DirectoryOut):
    scim_base_url: str | None = Field(default=None, description="SCIM directories: the IdP's tenant URL")
    scim_token: str | None = Field(default=None, description="SCIM directories: the IdP's bearer token, shown once")
    connection_test: ConnectionTestOut | None = Field(default=None, description="what the test found (test=true)")


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


class SyncCancelled(BaseModel):
    directory_id: str
    workflow_id: str
    run_id: str
    outcome: str = "cancellation requested: the pass stops at its next heartbeat, keeping what it committed"
    temporal_ui_url: str


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


class SourceHealthOut(BaseModel):
    """How reading the source itself goes: passes that read it (incremental, full), not those
    that only recompute from stored data, which succeed whatever the source's state."""

    state: Literal["never_synced", "healthy", "failing"]
    last_success_at: datetime | None = Field(None, description="when a pass last read the source to the end")
    last_error: str | None = Field(None, description="the last failed read's error, while it is the latest read")
    last_error_at: datetime | None = None


class SyncStatusOut(BaseModel):
    directory_id: str
    workflow_id: str
    workflow_status: str | None = Field(description="RUNNING, COMPLETED, FAILED… or null if never run")
    state: str | None
    progress: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    last_run: SyncRunOut | None = None
    source: SourceHealthOut = Field(default_factory=lambda: SourceHealthOut(state="never_synced"))
    temporal_ui_url: str | None = None
