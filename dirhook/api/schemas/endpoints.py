"""Webhook endpoints, their state and their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, field_validator
from pydantic.json_schema import SkipJsonSchema

from dirhook.delivery.rules import DeliveryStatus
from dirhook.endpoint_auth import HEADER_NAME_PATTERN, HEADER_VALUE_PATTERN, MAX_HEADER_VALUE, RESERVED_HEADERS
from dirhook.models import EVENT_TYPES
from dirhook.strict_json import StrictJsonModel
from dirhook.subscriptions import validate_event_type_patterns

# Published for clients; the validators refuse with messages of their own (scheme, host).
URL_SCHEMA: dict[str, JsonValue] = {"pattern": r"^https?://[^\s/?#]+"}
_RESERVED: list[JsonValue] = [*sorted(RESERVED_HEADERS)]
HEADERS_SCHEMA: dict[str, JsonValue] = {
    "propertyNames": {
        "pattern": HEADER_NAME_PATTERN,
        "not": {"anyOf": [{"enum": _RESERVED}, {"pattern": "^[Ww][Ee][Bb][Hh][Oo][Oo][Kk]-"}]},
    },
    "additionalProperties": {"type": "string", "pattern": HEADER_VALUE_PATTERN, "maxLength": MAX_HEADER_VALUE},
}

# Exact types, a family (`user.*`) or everything: the patterns that match at least one type.
EVENT_TYPE_PATTERNS = sorted({*EVENT_TYPES, *{t.split(".", 1)[0] + ".*" for t in EVENT_TYPES}, "*"})
EventTypePattern = Annotated[str, Field(json_schema_extra={"enum": EVENT_TYPE_PATTERNS})]


class EndpointSettings(StrictJsonModel):
    """What an endpoint receives and how; shared by creation and PATCH."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=500)
    event_types: list[EventTypePattern] | None = Field(
        default=None, description="exact types or wildcards like user.*; all when empty"
    )
    directory_ids: list[str] | None = Field(
        default=None, description="only these directories; all of the organization when empty"
    )
    retry_schedule: list[Annotated[float, Field(ge=0, le=7 * 86400)]] | None = Field(
        default=None,
        min_length=1,
        max_length=20,
        description="seconds to wait before each retry; default: 5s, 5m, 30m, 2h, 5h, 10h, 10h",
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
    headers: dict[str, str] | None = Field(
        default=None,
        description="write-only: request headers sent with every delivery besides the signature "
        "(e.g. Authorization or X-Api-Key), at most 20; sealed at rest, never returned (only "
        "header_names), never logged. A PATCH replaces the whole set; {} removes them",
        max_length=20,
        # validate_headers' rules, for clients (names reserved by dirhook are listed lowercase;
        # names compare case-insensitively).
        json_schema_extra=HEADERS_SCHEMA,
    )
    client_certificate: str | None = Field(
        default=None,
        description="write-only: a PEM client certificate (then any intermediates) with its "
        "unencrypted private key, presented for mutual TLS; sealed at rest. null in a PATCH removes it",
        max_length=64 * 1024,
    )

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        from dirhook.endpoint_auth import validate_headers

        return validate_headers(v) if v is not None else None

    @field_validator("client_certificate")
    @classmethod
    def _certificate(cls, v: str | None) -> str | None:
        from dirhook.endpoint_auth import check_client_certificate

        if v is not None:
            check_client_certificate(v)
        return v

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

    v = v.strip()  # pasted with a space or a newline around it: the URL is what is inside

    try:
        check_url_syntax(v)
    except UnsafeURL as exc:
        raise ValueError(str(exc)) from None
    return v


class EndpointIn(EndpointSettings):
    url: str = Field(max_length=2048, description="where deliveries go", json_schema_extra=URL_SCHEMA)
    organization_id: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _http_url(v)


class EndpointPatch(EndpointSettings):
    # Absent: unchanged; an endpoint always has a URL, so null is refused (and not published).
    url: Annotated[str, Field(max_length=2048, json_schema_extra=URL_SCHEMA)] | SkipJsonSchema[None] = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str:
        if v is None:
            raise ValueError("an endpoint always has a URL: leave url out to keep it")
        return _http_url(v)


class ClientCertificateOut(BaseModel):
    subject: str
    not_valid_after: datetime


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
    # The values of dirhook.contracts.EndpointHealth, spelled out: a Literal keeps the
    # published OpenAPI schema as it is (an enum would become a component of its own).
    health: Literal["healthy", "failing", "circuit_open"] = Field(
        default="healthy", description="circuit_open: only a probe goes out, at next_probe_at; the rest is held"
    )
    consecutive_failures: int = Field(default=0, description="failed attempts since the last success")
    breaker_opened_at: datetime | None = None
    next_probe_at: datetime | None = None
    header_names: list[str] = Field(
        default_factory=list, description="names of the custom headers (values are write-only)"
    )
    client_certificate: ClientCertificateOut | None = Field(
        default=None, description="the mutual-TLS certificate, if any"
    )
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


class RotateIn(StrictJsonModel):
    model_config = ConfigDict(extra="forbid")
    overlap_seconds: float | None = Field(
        default=None, ge=0, le=7 * 86400, description="how long the old secret keeps signing (24 h)"
    )


class DisableIn(StrictJsonModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="disabled by an operator", min_length=1, max_length=500)


class StateChangeOut(BaseModel):
    at: datetime
    enabled: bool
    reason: str


def _iso_text(value: object) -> object:
    # JSON carries a time as an ISO 8601 string; a number is refused, not read as a Unix time.
    if not isinstance(value, str | datetime):
        raise ValueError("an ISO 8601 date and time, e.g. 2026-01-31T12:00:00Z")
    return value


IsoDatetime = Annotated[datetime, Field(strict=False), BeforeValidator(_iso_text)]


class RecoverIn(StrictJsonModel):
    model_config = ConfigDict(extra="forbid")
    since: IsoDatetime = Field(
        description="requeue every delivery not yet succeeded (failed, skipped, retrying, "
        "held) created since then, to be sent now",
    )


class ReplayIn(StrictJsonModel):
    # since_sequence or since (the route refuses neither), in the published schema too.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["since_sequence"], "properties": {"since_sequence": {"type": "integer"}}},
                {"required": ["since"], "properties": {"since": {"type": "string"}}},
            ]
        },
    )
    directory_id: str
    since_sequence: int | None = Field(default=None, ge=0, le=2**53, description="events with a sequence at least this")
    since: IsoDatetime | None = Field(default=None, description="events created at or after this")


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
