"""LdapSource: one pass's reading of an LDAP or AD directory, over ldap3.

Picks, per pass, the cheapest way the server offers: syncrepl (OpenLDAP) or DirSync (AD)
from a stored cookie, else a modifyTimestamp delta; full passes list everything, their
users read and normalized in a second process (``reader``). Reads ``raw_attributes`` from
ldap3's responses and decodes them in ``dirhook.normalize``: building ldap3 ``Entry``
objects costs several times the read itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from dirhook.normalize import effective_mapping, requested_attributes
from dirhook.providers.base import Changes, SourceEntry
from dirhook.providers.ldap import listener, polling
from dirhook.providers.ldap import syncrepl_codec as codec
from dirhook.providers.ldap.config import LdapConfig
from dirhook.providers.ldap.connection import open_connection, paged, supported_controls
from dirhook.providers.ldap.dirsync import DIRSYNC_OID, dirsync_changes, fresh_dirsync_cookie
from dirhook.providers.ldap.reader import UserReader
from dirhook.providers.ldap.syncrepl import fresh_cookie, syncrepl_changes
from dirhook.providers.probe import Probe, count


class LdapSource:
    def __init__(
        self,
        config: LdapConfig,
        password: str | None,
        mapping_overrides: dict[str, Any] | None,
        timestamp_overlap_seconds: int = 300,
        allow_private: bool = True,
    ):
        self.config = config
        self.allow_private = allow_private
        self._password = password
        self._mapping_overrides = mapping_overrides
        self.mapping = effective_mapping(config.flavour, mapping_overrides)
        self.overlap = timedelta(seconds=timestamp_overlap_seconds)
        self._conn: Any = None
        self.syncrepl = self.dirsync = self.notifications = False  # what the server offers (connect)

    def connect(self) -> None:
        self._conn = open_connection(self.config, self._password, self.allow_private)
        controls = supported_controls(self._conn)
        ad = self.config.active_directory
        self.syncrepl = not ad and codec.SYNC_REQUEST_OID in controls
        self.dirsync = ad and DIRSYNC_OID in controls
        self.notifications = ad and listener.NOTIFICATION_OID in controls

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.unbind()
            finally:
                self._conn = None

    def probe(self) -> Probe:
        """Bound already (connect): both bases exist, and how many users and groups match."""
        cfg = self.config
        users, users_capped = count(paged(self._conn, cfg.user_base_dn, cfg.user_filter, ["1.1"], cfg.page_size))
        groups, groups_capped = count(paged(self._conn, cfg.groups_base, cfg.group_filter, ["1.1"], cfg.page_size))
        found = Probe(users, groups, users_capped or groups_capped)
        found.notes.append(
            "live changes: " + ("syncrepl" if self.syncrepl else "DirSync" if self.dirsync else "none, polled")
        )
        if users == 0:
            found.notes.append(f"no entry under {cfg.user_base_dn!r} matches {cfg.user_filter}")
        return found

    @property
    def can_listen(self) -> bool:
        """Whether the connected server can announce changes (syncrepl, or AD's notifications)."""
        return self.syncrepl or self.notifications

    def listen(self, cookie: str | None, on_change: Callable[[], None], keep_going: Callable[[], bool]) -> None:
        """Calls ``on_change()`` for every change the server announces, while ``keep_going()``
        (refreshAndPersist from the syncrepl ``cookie`` on OpenLDAP, change notifications on AD)."""
        listener.listen(
            self._conn.server, self.config, self._password, self.notifications, cookie, on_change, keep_going
        )

    def changes(self, cursor: dict[str, Any] | None, full: bool) -> Changes:
        cfg = self.config
        cursor = cursor or {}
        user_attrs = requested_attributes(self.mapping["user"], [cfg.timestamp_attribute])
        group_attrs = requested_attributes(self.mapping["group"], [cfg.timestamp_attribute])
        if self.syncrepl and not full and cursor.get("sync_users") and cursor.get("sync_groups"):
            return syncrepl_changes(self._conn, cfg, cursor, user_attrs, group_attrs)
        if self.dirsync and not full and cursor.get("dirsync"):
            return dirsync_changes(self._conn, cfg, cursor, user_attrs, group_attrs)
        since = cursor.get("modify_timestamp")
        # No usable cookie for the server's own change tracking: read everything once.
        full = (
            full
            or not since
            or (self.syncrepl and not cursor.get("sync_users"))
            or (self.dirsync and not cursor.get("dirsync"))
        )
        user_filter, group_filter = cfg.user_filter, cfg.group_filter
        if not full and since:
            user_filter = polling.changed_since(cfg, cfg.user_filter, since, self.overlap)
            group_filter = polling.changed_since(cfg, cfg.group_filter, since, self.overlap)
        next_cursor: dict[str, Any] = {"modify_timestamp": since or ""}
        # Cookies are taken before reading: a change made while the pass reads comes again
        # next time (the content hash makes that free), none is lost.
        if self.dirsync and full:
            next_cursor["dirsync"] = fresh_dirsync_cookie(self._conn, cfg)
        if self.syncrepl and full:
            next_cursor["sync_users"] = fresh_cookie(self._conn, cfg.user_base_dn)
            next_cursor["sync_groups"] = fresh_cookie(self._conn, cfg.groups_base)
        known_records = None
        if full:  # every user: read and normalized in a second process (reader.py)
            reader = UserReader(
                cfg.model_dump(),
                self._password,
                self._mapping_overrides,
                cfg.user_base_dn,
                user_filter,
                user_attrs,
                next_cursor,
                cfg.timeout_seconds * 6,
            )
            users: Iterator[SourceEntry] = iter(reader)
            known_records = reader.known_records
        else:
            users = polling.entries(self._conn, cfg, cfg.user_base_dn, user_filter, user_attrs, next_cursor)
        conn = self._conn
        return Changes(
            full=full,
            groups=polling.entries(conn, cfg, cfg.groups_base, group_filter, group_attrs, next_cursor),
            users=users,
            user_ids=None if full else (lambda: polling.external_ids(conn, cfg, cfg.user_base_dn, cfg.user_filter)),
            group_ids=None if full else (lambda: polling.external_ids(conn, cfg, cfg.groups_base, cfg.group_filter)),
            next_cursor=next_cursor,
            known_records=known_records,
        )
