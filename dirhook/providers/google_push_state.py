"""What Google Workspace push keeps in the database for one directory: its channels (opened
before Google is asked, so an early notification finds them; renewed near their end) and
the notifications no committed pass has read yet. Google itself is reached through the
two callables a pass hands in (dirhook/providers/google.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from dirhook import tokens
from dirhook.db.schema import GoogleChannel, GoogleNotification
from dirhook.providers.google_push import CHANNEL_KINDS, due_for_renewal

# (kind, channel id, token) -> (Google's resource id, when the channel ends, in seconds)
Watch = Callable[[str, str, str], tuple[str, float]]
Stop = Callable[[str, str, str], None]  # (kind, channel id, resource id)


class ChannelRefused(Exception):
    """Google would not open a channel (a scope not granted, an address it refuses)."""


@dataclass(frozen=True)
class HeldChannel:
    kind: str
    channel_id: str
    resource_id: str
    expires_at: float


class PushState:
    def __init__(self, sessions: sessionmaker[Session], directory_id: str):
        self.sessions = sessions
        self.directory_id = directory_id

    # -- channels -----------------------------------------------------------------------------------
    def held(self) -> dict[str, HeldChannel]:
        """The open channels by kind. A row without a resource id is a watch a crashed pass
        never saw answered (passes of a directory run one at a time): dropped, not counted."""
        with self.sessions.begin() as s:
            s.execute(
                delete(GoogleChannel).where(
                    GoogleChannel.directory_id == self.directory_id, GoogleChannel.resource_id == ""
                )
            )
            return {
                # SQLite hands datetimes back without their zone: they are UTC
                c.kind: HeldChannel(c.kind, c.channel_id, c.resource_id, c.expires_at.replace(tzinfo=UTC).timestamp())
                for c in s.scalars(select(GoogleChannel).where(GoogleChannel.directory_id == self.directory_id))
            }

    def maintain(self, now: float, lifetime: float, watch: Watch, stop: Stop, notes: list[str]) -> bool:
        """Every kind of channel open and not near its end; True when all are. A channel
        Google refuses is noted, and the pass then lists the whole account."""
        held = self.held()
        ok = True
        for kind in CHANNEL_KINDS:
            old = held.get(kind)
            if old and not due_for_renewal(old.expires_at, now, lifetime):
                continue
            # The row first: Google may notify before watch() has even answered, and an
            # unknown channel is refused (404).
            channel_id, token = str(uuid.uuid4()), tokens.new_secret()
            with self.sessions.begin() as s:
                s.add(
                    GoogleChannel(
                        channel_id=channel_id,
                        directory_id=self.directory_id,
                        kind=kind,
                        resource_id="",
                        token_digest=tokens.digest(token),
                        expires_at=datetime.fromtimestamp(now + lifetime, UTC),
                    )
                )
            try:
                resource_id, expires = watch(kind, channel_id, token)
            except Exception as exc:
                with self.sessions.begin() as s:
                    s.execute(delete(GoogleChannel).where(GoogleChannel.channel_id == channel_id))
                if not isinstance(exc, ChannelRefused):
                    raise
                notes.append(f"Google refused the push channel {kind} ({exc}); this pass lists everything")
                ok = False
                continue
            with self.sessions.begin() as s:
                opened = s.get(GoogleChannel, channel_id)
                assert opened is not None
                opened.resource_id, opened.expires_at = resource_id, datetime.fromtimestamp(expires, UTC)
                if old:
                    s.execute(delete(GoogleChannel).where(GoogleChannel.channel_id == old.channel_id))
            if old:
                stop(kind, old.channel_id, old.resource_id)
        return ok

    # -- notifications ----------------------------------------------------------------------------
    def pending(self, limit: int) -> list[tuple[int, str, str]]:
        """(id, "user" | "group", key) of what notifications named and no committed pass read."""
        with self.sessions() as s:
            rows = s.execute(
                select(GoogleNotification.id, GoogleNotification.kind, GoogleNotification.object_key)
                .where(GoogleNotification.directory_id == self.directory_id)
                .order_by(GoogleNotification.id)
                .limit(limit)
            )
            return [(int(i), str(kind), str(key)) for i, kind, key in rows]

    def forget(self, ids: list[int]) -> None:
        """Those a committed pass read (its cursor lists them), by id, never by a range: on
        PostgreSQL a row can commit after one with a higher id (sequences are handed out
        before commit), and would fall under a "read up to" mark unread."""
        with self.sessions.begin() as s:
            s.execute(
                delete(GoogleNotification).where(
                    GoogleNotification.directory_id == self.directory_id, GoogleNotification.id.in_(ids)
                )
            )
