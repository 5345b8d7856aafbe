"""Google Workspace push notifications: Google POSTs them to the address a directory's
channels were opened with. No bearer token (Google sends none): the channel's own token,
checked by dirhook.services.google_notifications, is the proof."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response

from dirhook import sync_control
from dirhook.api.deps import get_temporal
from dirhook.contracts import SyncMode
from dirhook.providers.google_push import NOTIFICATIONS_PATH
from dirhook.services.google_notifications import receive

router = APIRouter(tags=["google"])


@router.post(
    NOTIFICATIONS_PATH,
    status_code=204,
    response_class=Response,
    responses={
        400: {"description": "the body is not a JSON object"},
        404: {"description": "not a channel dirhook opened for this directory, or the wrong channel token"},
        503: {"description": "Temporal is unreachable: Google retries the notification"},
    },
)
async def google_notification(
    request: Request,
    directory_id: Annotated[str, Path(max_length=64)],
    x_goog_channel_id: Annotated[str, Header(max_length=64)],
    x_goog_channel_token: Annotated[str, Header(max_length=256)],
    x_goog_resource_state: Annotated[str, Header(max_length=64)],
) -> Response:
    """A push notification of a Google Workspace directory's channel (users.watch or the
    Reports API's activities.watch). What it names is recorded and an incremental pass of
    the directory is requested at once (or right after the running one), which reads only
    the users and groups notifications named."""
    body = await request.body()
    received = await asyncio.to_thread(receive, request.app.state.sessions, directory_id, request.headers, body)
    if received.named:  # (a "sync" message, or an admin event naming no group, has nothing to read)
        client = await get_temporal(request)
        await sync_control.request_sync(client, request.app.state.settings, received.directory, SyncMode.INCREMENTAL)
    return Response(status_code=204)
