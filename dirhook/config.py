"""Settings, read from the environment (``DIRHOOK_*``) by pydantic-settings."""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The admin token and the codec URL's secret: shorter is refused at start-up.
MIN_SECRET_LENGTH = 32

# Svix's retry schedule (README, "Delivery"): the first attempt is immediate,
# then these waits between attempts, about three days in all.
DEFAULT_RETRY_SCHEDULE = [5, 300, 1800, 7200, 18000, 36000, 36000]


def default_data_dir() -> Path:
    """``.dirhook`` at the project root when dirhook runs from its checkout (scripts/dev's
    place, found from any directory the CLI is run in), else in the current directory."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "dirhook" / "config.py").is_file():
        return root / ".dirhook"
    return Path(".dirhook")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DIRHOOK_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir, description="Where the embedded stack keeps its files")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; SQLite file under data_dir when unset")
    admin_token: SecretStr | None = Field(
        default=None, description="Admin bearer token; generated once into data_dir when unset"
    )

    # Payload encryption (dirhook/codec.py): {"key id": "base64 of 32 bytes"}, JSON.
    encryption_keys: dict[str, SecretStr] = Field(default_factory=dict)
    encryption_key_id: str | None = Field(default=None, description="the key that encrypts; default: the only one")
    # Workers and clients with keys refuse payloads that are not encrypted (dirhook/codec.py);
    # true only while histories started before encryption was turned on are finishing.
    accept_unencrypted_payloads: bool = False
    # Origins of the Temporal UI allowed to call the API's codec endpoint (/codec).
    codec_cors_origins: list[str] = Field(default_factory=list)
    # The embedded stack only: a secret `dirhook dev` makes at each start and gives its UI in
    # the codec URL (/codec/<secret>/decode); with it, loopback callers decode without a login.
    codec_url_secret: SecretStr | None = None

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    # TLS to Temporal's frontend (dirhook/temporal.py, tls_config): on with the system's
    # roots, or with this CA; a client certificate and key (PEM files) for mTLS; the name
    # the server's certificate carries when it is not the address's host.
    temporal_tls: bool = False
    temporal_tls_ca: Path | None = None
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_tls_server_name: str | None = None
    # Temporal Cloud's API keys (sent as a bearer token, over TLS only).
    temporal_api_key: SecretStr | None = None
    task_queue: str = "dirhook"

    # Ports of the embedded stack (``dirhook dev``).
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    # Where operators open the Temporal UI, for the links dirhook prints and returns
    # (default: the embedded stack's, http://127.0.0.1:<temporal_ui_port>).
    temporal_ui_url: str | None = None
    temporal_http_port: int = 7243
    temporal_metrics_port: int = 7244

    allow_private_endpoints: bool = False
    # Where directory sources may point (dirhook/source_policy.py): LDAP/AD servers on private
    # addresses (on premises, by nature: allowed); Entra's login and Graph hosts on private
    # ones (cloud services: refused, but for a test Graph or a proxy); Google's token and
    # Admin SDK hosts likewise.
    allow_private_directories: bool = True
    allow_private_entra_hosts: bool = False
    allow_private_google_hosts: bool = False
    # Plain http:// endpoints: refused at creation and update unless allowed (`dirhook dev`
    # allows them: a laptop's receiver is http://localhost).
    allow_http_endpoints: bool = False
    # A CA bundle endpoints' certificates may chain to besides the system's (a private PKI).
    endpoint_ca_bundle: str | None = None
    delivery_timeout_seconds: float = 15.0
    delivery_batch_size: int = 500
    delivery_concurrency: int = 10
    retry_schedule_seconds: list[float] = Field(default_factory=lambda: [float(s) for s in DEFAULT_RETRY_SCHEDULE])
    # The delivery sweep (a Temporal Schedule) wakes dispatchers of waiting deliveries this
    # often, so a lost wake-up delays delivery by at most this much (0: no sweep).
    delivery_sweep_seconds: float = Field(default=60.0, ge=0)
    # An endpoint's circuit breaker opens after this many failed attempts in a row with a
    # retry among them (dirhook/delivery/rules.py, BreakerPolicy).
    breaker_min_failures: int = Field(default=50, ge=1)
    # An endpoint failing without a single success for this long is disabled (its events kept).
    endpoint_disable_after_seconds: float = 5 * 86400
    # After a rotation, the old secret keeps signing beside the new one this long.
    secret_rotation_overlap_seconds: float = 86400
    max_payload_bytes: int = 512 * 1024
    # raw_attributes (unmapped source attributes) kept per object, in bytes of JSON.
    raw_attributes_max_bytes: int = 32 * 1024

    # Deletion protection defaults (Entra Connect holds at 500): per directory overridable.
    deletion_threshold_count: int = 500
    deletion_threshold_percent: float = 10.0

    # New LDAP/AD directories get a schedule of incremental passes this often (0: none).
    default_sync_interval_seconds: int = 900

    # Entra: a CA bundle to trust for the login and Graph hosts besides the system's (a
    # TLS-inspecting proxy, a private cloud; the tests' local Graph).
    entra_ca_bundle: str | None = None
    # Google Workspace: the same, for Google's token endpoint and the Admin SDK.
    google_ca_bundle: str | None = None
    # The API's address as Google reaches it (https://dirhook.example.com, a name with a
    # publicly trusted certificate, as Google requires): Google Workspace directories then
    # get push channels (users.watch, the Reports API's activities.watch) whose notifications
    # start a pass within seconds. Unset, or not https: they poll on their schedule.
    public_url: str | None = None
    # How long a push channel is asked to live (Google caps it, at 6 hours): renewed by the
    # pass that finds it within a quarter of that from its end.
    google_channel_seconds: int = Field(21600, ge=300, le=7 * 86400)
    # With push channels, passes read only what notifications named; a whole listing still
    # runs this often, since Google's notifications are best effort.
    google_reconcile_seconds: int = Field(21600, ge=60, le=7 * 86400)

    # SCIM directories: the body and page size limits, and requests per second per directory.
    scim_max_body_bytes: int = 1024 * 1024
    # Every other route's request bodies, refused with 413 before anything parses them.
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    scim_max_page_size: int = 1000
    scim_rate_limit_per_second: float = 100.0
    scim_rate_limit_burst: float = 200.0
    # Operations one /Bulk request may carry (announced as bulk.maxOperations); each counts
    # against the rate limit like a request of its own.
    scim_bulk_max_operations: int = Field(default=100, ge=1)
    # Resources scim2-models may evaluate for a filter or sortBy dirhook's SQL cannot answer
    # (dirhook/scim/query.py); beyond, the search answers 400 tooMany (RFC 7644 §3.12).
    scim_filter_scan_limit: int = Field(default=10_000, ge=1)
    # Deletion protection for pushes (dirhook/scim/deprovisions.py): a SCIM directory's
    # deprovisions are counted over this window against its deletion threshold, and applied
    # once the pushes pause this long (at most after the maximum wait).
    scim_deprovision_window_seconds: float = Field(default=600.0, gt=0)
    scim_deprovision_quiet_seconds: float = Field(default=10.0, gt=0)
    scim_deprovision_max_wait_seconds: float = Field(default=60.0, gt=0)
    # Deactivations (active: false, how Okta and Entra deprovision) count and are held too.
    scim_guard_deactivations: bool = True

    # A SCIM write waits at most this long for its directory (a sync pass holding it) before
    # it answers 503 with Retry-After; passes wait as long as it takes.
    directory_write_wait_seconds: float = Field(default=10.0, gt=0)

    ldap_page_size: int = 500
    # Live LDAP listeners one sync worker process holds at most (one thread each).
    ldap_listeners_max: int = 200
    sync_chunk_size: int = 500
    # A pass silent this long (no committed chunk) is given to another worker.
    sync_heartbeat_timeout_seconds: float = 120.0
    # modifyTimestamp polling re-reads this many seconds before the stored cursor, so a
    # change made while the previous pass was paging is never missed; the content hash
    # makes the overlap free of duplicate events.
    ldap_timestamp_overlap_seconds: int = 300

    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|text)$", description="json lines or plain text")
    # Prometheus endpoints of a worker process: dirhook's own metrics, and the Temporal
    # SDK's (0: off; `dirhook dev` turns them on).
    worker_metrics_port: int = 0
    temporal_sdk_metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    # /metrics of the API: a bearer token it then requires (the admin token works too), and
    # how long the database's counts are kept between scrapes.
    metrics_token: SecretStr | None = Field(default=None, min_length=16)
    metrics_cache_seconds: float = Field(default=15.0, ge=0)

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'dirhook.db').resolve()}"

    @property
    def google_push_url(self) -> str | None:
        """Where Google sends a directory's notifications (``…/google/notifications/{id}``),
        or None when push channels cannot be used (no public https address)."""
        url = (self.public_url or "").strip().rstrip("/")
        return url if url.startswith("https://") else None

    @property
    def sync_task_queue(self) -> str:
        return f"{self.task_queue}-sync"

    @property
    def listen_task_queue(self) -> str:
        """LDAP live listeners: each holds an activity slot and a thread as long as it runs."""
        return f"{self.task_queue}-listen"

    @property
    def delivery_task_queue(self) -> str:
        return f"{self.task_queue}-delivery"

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    @field_validator("admin_token", "codec_url_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None, info: Any) -> SecretStr | None:
        # The admin token opens every organization and the codec: a short one is guessable.
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_LENGTH:
            name = f"DIRHOOK_{info.field_name.upper()}"
            raise ValueError(
                f"{name} must be at least {MIN_SECRET_LENGTH} characters "
                "(e.g. `openssl rand -hex 32`); unset, the embedded stack makes one"
            )
        return value

    @model_validator(mode="after")
    def _temporal_client_certificate_whole(self) -> Settings:
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError("DIRHOOK_TEMPORAL_TLS_CERT and DIRHOOK_TEMPORAL_TLS_KEY go together (mTLS needs both)")
        return self

    def ensure_data_dir(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir

    def admin_token_source(self) -> tuple[str | None, str]:
        """The admin token if one exists (never created: the CLI's view), and where it was looked for."""
        if self.admin_token is not None:
            return self.admin_token.get_secret_value(), "DIRHOOK_ADMIN_TOKEN"
        path = (self.data_dir / "admin_token").resolve()
        return (path.read_text().strip() if path.is_file() else None), str(path)

    @cached_property
    def resolved_admin_token(self) -> str:
        """The admin token: from the environment, else the one kept in data_dir (created once, mode 0600)."""
        if self.admin_token is not None:
            return self.admin_token.get_secret_value()
        path = self.ensure_data_dir() / "admin_token"
        if path.exists():
            return path.read_text().strip()
        token = "dh_admin_" + secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        return token


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
