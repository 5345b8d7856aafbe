"""FastAPI dependencies: settings, database sessions, admin auth, the Temporal client."""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated, Iterator

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from temporalio.client import Client

from dirhook.config import Settings

bearer = HTTPBearer(auto_error=False, description="the admin token printed by `dirhook dev`")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def require_admin(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    expected = request.app.state.admin_token
    if credentials is None or not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or invalid bearer token",
                            headers={"WWW-Authenticate": "Bearer"})


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
        return await request.app.state.temporal.get()
    except Exception:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            f"Temporal is unreachable at {request.app.state.settings.temporal_address}") from None


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
