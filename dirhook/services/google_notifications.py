"""Google Workspace push notifications as the API receives them, and the channels a deleted
directory leaves behind.

A notification is trusted only when its channel is one dirhook opened for that directory
(``X-Goog-Channel-ID``) and it carries the channel's token (``X-Goog-Channel-Token``, kept
as a digest): anything else is answered 404, as if the path did not exist, and changes
nothing. What it names is recorded (``GoogleNotification``) for the pass it then starts;
the pass reads only those objects (dirhook/providers/google.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from dirhook import tokens
from dirhook.config import Settings
from dirhook.db.schema import Directory, GoogleChannel, GoogleNotification
from dirhook.providers.google_push import notified
from dirhook.providers.google_push_state import PushState
from dirhook.services.directory_rules import ref
from dirhook.services.errors import NotFound, RequestError
from dirhook.sync_control import DirectoryRef

log = logging.getLogger(__name__)

UNKNOWN_CHANNEL = "no such notification channel"


@dataclass
class Received:
    directory: DirectoryRef
    state: str  # X-Goog-Resource-State: "sync" when a channel opens, then the event
    named: int  # objects recorded for the next pass


def receive(sessions: sessionmaker[Session], directory_id: str, headers: Mapping[str, str], body: bytes) -> Received:
    """Checks and records one notification. Raises NotFound (unknown channel, wrong token,
    another directory's channel) or RequestError 400 (a body that is not JSON)."""
    channel_id = headers.get("x-goog-channel-id", "")
    token = headers.get("x-goog-channel-token", "")
    state = headers.get("x-goog-resource-state", "")
    with sessions.begin() as s:
        channel = s.get(GoogleChannel, channel_id) if channel_id else None
        if channel is None or channel.directory_id != directory_id or not tokens.matches(token, channel.token_digest):
            raise NotFound(UNKNOWN_CHANNEL)
        d = s.get(Directory, directory_id)
        if d is None:
            raise NotFound(UNKNOWN_CHANNEL)
        if state == "sync":  # the channel is open; nothing has changed
            return Received(ref(d), state, 0)
        try:
            parsed = json.loads(body or b"{}")
        except ValueError:
            raise RequestError("the notification's body is not JSON") from None
        if not isinstance(parsed, dict):
            raise RequestError("the notification's body is not a JSON object")
        named = notified(channel.kind, parsed)
        for kind, key in named:
            s.add(GoogleNotification(directory_id=directory_id, kind=kind, object_key=key[:320]))
        return Received(ref(d), state, len(named))


def stop_channels(directory: Directory, settings: Settings, sessions: sessionmaker[Session]) -> int:
    """Asks Google to stop every channel of a directory being deleted; returns how many were
    held. Best effort: a channel not stopped ends by itself (at most google_channel_seconds),
    and its notifications meet a 404 meanwhile."""
    held = list(PushState(sessions, directory.id).held().values())
    if not held:
        return 0
    from dirhook.providers.factory import build_source
    from dirhook.providers.google import GoogleSource

    try:
        source = build_source(directory, settings, sessions)
        assert isinstance(source, GoogleSource)
        source.connect()
    except Exception as exc:  # no key any more, Google unreachable: they expire by themselves
        log.warning("could not stop the Google channels of %s: %s", directory.id, type(exc).__name__)
        return len(held)
    try:
        for channel in held:
            source.stop_channel(channel.kind, channel.channel_id, channel.resource_id)
    finally:
        source.close()
    return len(held)
