"""The HTTP API (FastAPI). ``create_app`` is the uvicorn factory: ``dirhook.api.app:create_app``."""

from __future__ import annotations

import hmac
import logging
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi_offline import FastAPIOffline
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
)
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from dirhook import __version__
from dirhook.api.body_limit import BodyLimit
from dirhook.api.deps import TemporalConnector, authenticate, get_temporal, require_admin
from dirhook.api.error_log import ErrorLog
from dirhook.api.responses import allowed_methods, document_errors
from dirhook.api.routers import (
    codec,
    directories,
    endpoints,
    events,
    google,
    health,
    organizations,
    roles,
)
from dirhook.config import Settings
from dirhook.db import secrets
from dirhook.db.engine import check_schema, make_sessionmaker, open_database
from dirhook.metrics import DatabaseCollector
from dirhook.scim.gateway import ScimGateway
from dirhook.scim.projection import make_projector, make_settler
from dirhook.services.errors import RequestError
from dirhook.temporal import tls_config


def clean_error(error: Any) -> dict[str, Any]:
    """One validation error as people read it."""
    out = {k: v for k, v in dict(error).items() if k not in ("ctx", "url")}
    msg = str(out.get("msg", ""))
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    out["msg"] = msg
    cleaned: dict[str, Any] = jsonable_encoder(out)
    return cleaned


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    engine = open_database(settings)
    check_schema(engine)  # an unmigrated database would answer 500 on every route
    tls_config(settings)  # TemporalTLSError now, not a 500 at the first request that needs Temporal
    log = logging.getLogger("dirhook.api")
    # Secrets it could not open would fail every pass and delivery: refuse to start instead.
    clear = secrets.check_readable(engine)
    if secrets.box_of(engine.dialect) is None:
        log.warning("no keyring (DIRHOOK_ENCRYPTION_KEYS): stored secrets and Temporal payloads are not encrypted")
    elif clear:
        log.warning("%d stored secrets are not sealed yet: run `dirhook secrets reencrypt`", clear)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        engine.dispose()

    # /docs (Swagger UI) and /redoc from assets dirhook serves itself (fastapi-offline ships
    # them): FastAPI's defaults load from a CDN, a blank page on a machine without internet.
    app = FastAPIOffline(
        static_url="/docs-assets",
        title="dirhook",
        version=__version__,
        description="Directory sync (LDAP, Active Directory) delivered as signed webhooks. "
        "Authenticate with `Authorization: Bearer <admin token>` or an organization's API key "
        "(`dhk_…`, from `POST /v1/organizations/{id}/api-keys`), which sees that organization only.",
        lifespan=lifespan,
    )
    app.add_middleware(ErrorLog)
    # Outermost: a body over the limit is refused before FastAPI reads it (and before auth).
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes, exempt_prefixes=("/scim/",))
    app.state.settings = settings
    app.state.sessions = make_sessionmaker(engine)
    app.state.admin_token = settings.resolved_admin_token
    app.state.temporal = TemporalConnector(settings)

    @app.exception_handler(RequestError)
    async def _request_error(_request: Request, exc: RequestError) -> JSONResponse:
        # What a service refused, and why (dirhook.services.errors).
        return JSONResponse(status_code=exc.status, content={"detail": exc.detail}, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's shape (a list of {loc, msg, type, input}), with pydantic's "Value error, "
        # prefix taken off our validators' messages and its empty `ctx` dropped.
        return JSONResponse(status_code=422, content={"detail": [clean_error(e) for e in exc.errors()]})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only the first route's
            headers["allow"] = ", ".join(allowed_methods(app.openapi(), request.url.path))
        return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail}, headers=headers)

    @app.exception_handler(IntegrityError)
    async def _conflict(_request: Request, exc: IntegrityError):
        # A unique or foreign key constraint caught what validation could not (a race).
        return JSONResponse(status_code=409, content={"detail": "conflicts with existing data"})

    app.include_router(health.router)
    codec.setup(app, settings)
    app.include_router(codec.router)  # its own auth: the Temporal UI calls it from the browser
    app.include_router(google.router)  # its own proof: each channel's token
    # SCIM: each directory's own bearer token, checked by the gateway; SCIM errors, not FastAPI's.
    app.mount(
        "/scim",
        ScimGateway(
            app.state.sessions,
            settings,
            make_projector(app.state.sessions, settings, app.state.temporal.get),
            make_settler(app.state.sessions, settings, app.state.temporal.get),
        ),
    )
    app.state.metrics = CollectorRegistry()
    app.state.metrics.register(DatabaseCollector(app.state.sessions, settings.metrics_cache_seconds))
    metrics_tokens = [
        t.encode()
        for t in (settings.metrics_token and settings.metrics_token.get_secret_value(), app.state.admin_token)
        if t
    ]

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=PlainTextResponse,
        responses={401: {"description": "DIRHOOK_METRICS_TOKEN is set and the bearer token is not it"}},
    )
    def metrics(request: Request) -> PlainTextResponse:
        """Prometheus exposition: this process's counters and the database's gauges (counted
        at most once per DIRHOOK_METRICS_CACHE_SECONDS). With DIRHOOK_METRICS_TOKEN set, it
        needs `Authorization: Bearer <that token>` (or the admin token)."""
        if settings.metrics_token is not None:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not any(hmac.compare_digest(token.encode(), t) for t in metrics_tokens):
                return PlainTextResponse(
                    "missing or invalid bearer token\n", status_code=401, headers={"WWW-Authenticate": "Bearer"}
                )
        body = generate_latest(REGISTRY) + generate_latest(app.state.metrics)
        return PlainTextResponse(body.decode(), media_type=CONTENT_TYPE_LATEST)

    # Every resource route: the admin token, or an organization's API key confined to it.
    admin = [Depends(authenticate)]
    resources = [
        organizations.router,
        directories.router,
        endpoints.router,
        events.router,
        roles.roles_router,
        roles.mappings_router,
    ]
    for router in resources:
        app.include_router(router, dependencies=admin)
    document_errors(app, resources, require_admin, (get_temporal, directories.directory_service))
    return app
