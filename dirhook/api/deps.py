"""FastAPI dependencies: settings, database sessions, callers (admin token or an
organization's API key), the Temporal client."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, TypeVar

import anyio.from_thread
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from temporalio.client import Client

from dirhook import api_keys
from dirhook.config import Settings
from dirhook.db.schema import ApiKey, utcnow
from dirhook.services.scope import Scope, caller_scope, visible

__all__ = [
    "CallerDep",
    "ScopeDep",
    "SessionDep",
    "SettingsDep",
    "TemporalDep",
    "authenticate",
    "caller_scope",
    "in_loop",
    "require_admin",
    "visible",
]
T = TypeVar("T")

bearer = HTTPBearer(
    auto_error=False, description="the admin token printed by `dirhook dev`, or an organization's API key"
)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


@dataclass(frozen=True)
class Caller:
    """Who is asking. ``organization_id`` None means the admin token: every organization."""

    organization_id: str | None
    api_key_id: str | None = None


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer"})


# last_used_at is a hint for operators ("is this key still in use?"), not an audit log:
# writing it on every request would make every read a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    session: Annotated[Session, Depends(get_session)],
) -> Caller:
    """The admin token or a live API key; anything else is a 401.

    The session is then scoped to the caller's organization (``session.info``): every
    lookup through ``visible``/``caller_scope`` answers 404 for another organization's
    resources, exactly as if they did not exist.
    """
    token = credentials.credentials if credentials else ""
    if token and hmac.compare_digest(token.encode(), request.app.state.admin_token.encode()):
        caller = Caller(None)
    elif parsed := api_keys.parse(token):
        key = session.get(ApiKey, parsed[0])
        if key is None or not api_keys.matches(parsed[1], key.secret_digest):
            raise _unauthorized("missing or invalid bearer token")
        if key.revoked_at is not None:
            raise _unauthorized(f"API key {key.id} was revoked")
        now = utcnow()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            key.last_used_at = now
            session.commit()
        caller = Caller(key.organization_id, key.id)
    else:
        raise _unauthorized("missing or invalid bearer token")
    session.info["organization_id"] = caller.organization_id
    return caller


CallerDep = Annotated[Caller, Depends(authenticate)]


def require_admin(caller: CallerDep) -> None:
    if caller.organization_id is not None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this needs the admin token, not an organization's API key")


def get_scope(request: Request, caller: CallerDep) -> Scope:
    """What a service acts for: the caller's organization, with sessions of its own (opened
    in the service's worker threads)."""
    return Scope(request.app.state.sessions, caller.organization_id)


ScopeDep = Annotated[Scope, Depends(get_scope)]


def in_loop(fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    """From a plain route (run in FastAPI's thread pool, so its database work is off the
    event loop): run ``fn(*args)`` on the event loop and wait for it, for Temporal calls."""
    return anyio.from_thread.run(fn, *args)


class TemporalConnector:
    """Connects on first use, so the API starts (and /healthz answers) while Temporal is down."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Client:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    from dirhook import temporal as t

                    self._client = await asyncio.wait_for(t.connect(self.settings), timeout=10)
        return self._client


async def get_temporal(request: Request) -> Client:
    try:
        client: Client = await request.app.state.temporal.get()
        return client
    except Exception:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"Temporal is unreachable at {request.app.state.settings.temporal_address}",
        ) from None


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
