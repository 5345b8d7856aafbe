"""``/scim/v2/{directory_id}/…``: finds the directory, checks its bearer token, its rate
limit and the body size, then hands the request to that directory's scim2-server
application (built on first use, then kept).

IdP dialects are a policy of scim2-models, not code of ours: Entra's capitalized ops,
string booleans, schema-qualified paths and `Add` on single-valued attributes are
accepted by scim2-models as they are; Entra's member removal
(`{"op":"Remove","path":"members","value":[{"value":"<id>"}]}`) removes exactly the
listed members under `remove_value_as_filter=apply`; and a PATCH whose path filter
matches nothing creates the entry under `unmatched_path_filter=create`, as Entra expects.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, cast

from scim2_models import AuthenticationScheme, External, Reference, SCIMException, ScimPolicy, ScimProvider
from scim2_server.applications.asgi import ASGIApplication
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.service import ScimService
from scim2_server.utils import load_default_resource_types, load_default_schemas, load_default_service_provider_config
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from dirhook import tokens
from dirhook.config import Settings
from dirhook.db.schema import Directory
from dirhook.directory_lock import DirectoryBusy, DirectoryLocks
from dirhook.providers.base import Changes
from dirhook.scim.handler import DirectoryScimHandler
from dirhook.scim.storage import DirectoryScimStorage

log = logging.getLogger(__name__)

DIALECTS = ScimPolicy(
    remove_value_as_filter=ScimPolicy.RemoveValue.apply, unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create
)
BEARER = AuthenticationScheme(
    type=AuthenticationScheme.Type.oauthbearertoken,
    name="Bearer token",
    primary=True,
    description="The directory's SCIM token, from dirhook when the directory was made",
    spec_uri=Reference[External]("https://datatracker.ietf.org/doc/html/rfc6750"),
)
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"

Project = Callable[[str, Changes], Awaitable[None]]
Settle = Callable[[str], Awaitable[None]]


def build_provider(settings: Settings) -> ScimProvider:
    config = load_default_service_provider_config()
    # scim2-server's default configuration has every section; typed optional in scim2-models.
    assert config.change_password is not None and config.filter is not None and config.bulk is not None
    config.change_password.supported = False  # passwords are never stored, so never changed
    config.filter.max_results = settings.scim_max_page_size
    config.bulk.max_payload_size = settings.scim_max_body_bytes
    config.bulk.max_operations = settings.scim_bulk_max_operations
    config.authentication_schemes = [BEARER]
    config.documentation_uri = None
    return ScimProvider.from_discovery(
        load_default_schemas().values(), load_default_resource_types().values(), config=config, policy=DIALECTS
    )


class DirectoryScimApplication(ASGIApplication):
    """scim2-server's ASGI application for one directory, served under its own base URL."""

    def __init__(self, base_path: str, storage: DirectoryScimStorage, provider: ScimProvider, service: ScimService):
        super().__init__(storage, provider, service)
        self.handler = DirectoryScimHandler(self.service, storage)
        self.base_path = base_path

    # Static in the library; here each directory's application has its own base path, and the
    # library calls both through the instance.
    def get_base_url(self, scope: dict[str, Any]) -> str:  # type: ignore[override]
        host = dict(scope["headers"]).get(b"host", b"").decode()
        return f"{scope['scheme']}://{host}{self.base_path}"

    def get_path(self, scope: dict[str, Any]) -> str:  # type: ignore[override]
        return scope["path"].removeprefix(self.base_path) or "/"

    def handle_exception(self, request: ScimRequest, exception: Exception) -> ScimResponse:
        # The library logs a client error's detail, which can quote the request's values
        # (a userName, an email): we log only that it happened, and bugs in full.
        directory_id = self.base_path.rsplit("/", 1)[-1]
        if isinstance(exception, DirectoryBusy):
            log.info(
                "SCIM %s %s answered 503: %s",
                request.method,
                request.path,
                exception,
                extra={"directory_id": directory_id},
            )
            return ScimResponse(
                HTTPStatus.SERVICE_UNAVAILABLE,
                {"schemas": [ERROR_SCHEMA], "status": "503", "detail": str(exception)},
                {"Retry-After": str(exception.retry_after)},
            )
        if isinstance(exception, SCIMException):
            log.info(
                "SCIM %s %s answered %s",
                request.method,
                request.path,
                exception.status,
                extra={"directory_id": directory_id},
            )
        else:
            log.error(
                "SCIM %s %s failed",
                request.method,
                request.path,
                exc_info=exception,
                extra={"directory_id": directory_id},
            )
        return self.service.error_response(exception)


class TokenBucket:
    """Requests per second with a burst, per directory (per API process)."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, time.monotonic()

    def take(self, cost: float = 1) -> float:
        """0 if the request may go (its cost is taken), else the seconds until it could."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate


async def send_error(
    send: Send, status: int, detail: str, scim_type: str | None = None, headers: dict[str, str] | None = None
) -> None:
    body = {"schemas": [ERROR_SCHEMA], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    raw = json.dumps(body).encode()
    extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/scim+json"),
                (b"content-length", str(len(raw)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})


def bulk_operations(body: bytes) -> int:
    """How many operations a /Bulk body carries (0 when it is not one: scim2-server then
    answers the malformed body)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return 0
    operations = parsed.get("Operations") if isinstance(parsed, dict) else None
    return len(operations) if isinstance(operations, list) else 0


class ScimGateway:
    def __init__(self, sessions: sessionmaker[Session], settings: Settings, project: Project, settle: Settle):
        self.sessions = sessions
        self.settings = settings
        self.project = project
        self.settle = settle
        self.provider = build_provider(settings)
        self.service = ScimService(self.provider)
        self.apps: dict[str, DirectoryScimApplication] = {}
        self.buckets: dict[str, TokenBucket] = {}
        self.locks = DirectoryLocks(settings.sqlalchemy_url)

    def _directory(self, directory_id: str) -> tuple[str | None, str | None]:
        """(provider, token digest) of the directory, or (None, None)."""
        with self.sessions() as s:  # two columns, not the ORM object: this runs on every request
            row = s.execute(
                select(Directory.provider, Directory.scim_token_digest).where(Directory.id == directory_id)
            ).first()
            return (row[0], row[1]) if row else (None, None)

    def _app(self, root: str, directory_id: str) -> DirectoryScimApplication:
        app = self.apps.get(directory_id)
        if app is None:

            async def project(changes: Changes) -> None:
                await self.project(directory_id, changes)

            async def settle() -> None:
                await self.settle(directory_id)

            storage = DirectoryScimStorage(
                directory_id,
                self.sessions,
                self.service,
                project,
                self.locks,
                self.settings.directory_write_wait_seconds,
                self.settings.scim_filter_scan_limit,
                settle,
                self.settings.scim_guard_deactivations,
            )
            app = self.apps[directory_id] = DirectoryScimApplication(
                f"{root}/v2/{directory_id}", storage, self.provider, self.service
            )
        return app

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        root = scope.get("root_path", "")
        rest = scope["path"].removeprefix(root)
        version, _, rest = rest.lstrip("/").partition("/")
        directory_id, _, _ = rest.partition("/")
        if version != "v2" or not directory_id:
            await send_error(send, 404, "SCIM lives at /scim/v2/{directory_id}/")
            return
        provider, token_digest = await asyncio.to_thread(self._directory, directory_id)
        headers = dict(scope["headers"])
        auth = headers.get(b"authorization", b"").decode(errors="replace")
        scheme, _, token = auth.partition(" ")
        # An unknown directory and a wrong token look the same: nothing tells a caller
        # which directory IDs exist.
        if provider != "scim" or scheme.lower() != "bearer" or not tokens.matches(token.strip(), token_digest):
            await send_error(send, 401, "missing or invalid bearer token", headers={"www-authenticate": "Bearer"})
            return
        bucket = self.buckets.setdefault(
            directory_id, TokenBucket(self.settings.scim_rate_limit_per_second, self.settings.scim_rate_limit_burst)
        )
        wait = bucket.take()
        if wait:
            await send_error(
                send,
                429,
                f"more than {self.settings.scim_rate_limit_per_second:g} requests per second for this directory",
                headers={"retry-after": str(max(1, round(wait)))},
            )
            return
        limit = self.settings.scim_max_body_bytes
        declared = headers.get(b"content-length")
        body, more = b"", True
        if declared and declared.isdigit() and int(declared) > limit:
            more = False
            body = b"x" * (limit + 1)
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                break
        if len(body) > limit:
            await send_error(send, 413, f"the body is over {limit} bytes")
            return

        if scope["method"] == "POST" and rest.rstrip("/").endswith("/Bulk"):
            operations = bulk_operations(body)
            if operations > self.settings.scim_bulk_max_operations:
                await send_error(
                    send,
                    413,
                    f"the bulk request has {operations} operations, more than the maxOperations "
                    f"({self.settings.scim_bulk_max_operations}) this service announces; nothing was done",
                    "tooMany",
                )
                return
            # Each operation is a request against the directory's rate limit (the first was taken).
            wait = bucket.take(operations - 1) if operations > 1 else 0.0
            if wait:
                await send_error(
                    send,
                    429,
                    f"a bulk request of {operations} operations is over this directory's rate limit "
                    f"({self.settings.scim_rate_limit_per_second:g} operations per second); nothing was done",
                    headers={"retry-after": str(max(1, round(wait)))},
                )
                return

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        await self._app(root, directory_id)(cast(dict[str, Any], scope), replay, send)
