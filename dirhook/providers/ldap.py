"""LDAP / Active Directory source over ldap3: paged full listings and modifyTimestamp deltas.

Reads ``raw_attributes`` from ldap3's responses and decodes them in ``dirhook.normalize``:
building ldap3 ``Entry`` objects costs several times the read itself (peers.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator
from urllib.parse import urlparse

from pydantic import BaseModel, Field, field_validator

from dirhook.normalize import effective_mapping, requested_attributes
from dirhook.providers import syncrepl
from dirhook.providers.ldap_reader import UserReader
from dirhook.providers.ldap_wire import use_fast_entries
from dirhook.providers.base import (
    Changes,
    SourceAuthError,
    SourceConfigError,
    SourceEntry,
    SourceUnavailable,
)

PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"
GENERALIZED_TIME = "%Y%m%d%H%M%SZ"


class LdapConfig(BaseModel):
    """Connection settings of an LDAP or AD directory (the bind password is stored apart)."""

    url: str = Field(description="ldap://host:port or ldaps://host:port")
    bind_dn: str = Field(description="DN (or user@domain on AD) to bind as")
    start_tls: bool = False
    verify_tls: bool = True
    user_base_dn: str
    user_filter: str = "(objectClass=inetOrgPerson)"
    group_base_dn: str | None = Field(default=None, description="defaults to user_base_dn")
    group_filter: str = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))"
    flavour: str = Field(default="openldap", description="openldap | active_directory (attribute defaults)")
    live: bool = Field(default=True, description="a listener starts a pass on every change the server announces "
                                                 "(OpenLDAP: syncrepl; Active Directory: change notifications)")
    page_size: int = Field(default=500, ge=1, le=5000)
    timeout_seconds: float = Field(default=10, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parsed = urlparse(v)
        if parsed.scheme not in ("ldap", "ldaps") or not parsed.hostname:
            raise ValueError("must be ldap://host[:port] or ldaps://host[:port]")
        return v

    @field_validator("flavour")
    @classmethod
    def _flavour(cls, v: str) -> str:
        if v not in ("openldap", "active_directory"):
            raise ValueError("must be 'openldap' or 'active_directory'")
        return v

    @field_validator("user_filter", "group_filter")
    @classmethod
    def _filter(cls, v: str) -> str:
        from ldap3.operation.search import parse_filter

        try:
            parse_filter(v, None, auto_escape=True, auto_encode=True, validator=None, check_names=False)
        except Exception as exc:  # ldap3 raises several unrelated kinds for malformed filters
            raise ValueError(f"invalid LDAP filter: {exc}") from None
        return v

    @property
    def external_id_attribute(self) -> str:
        return "objectGUID" if self.flavour == "active_directory" else "entryUUID"


DIRSYNC_OID = "1.2.840.113556.1.4.841"
NOTIFICATION_OID = "1.2.840.113556.1.4.528"  # LDAP_SERVER_NOTIFICATION_OID (MS-ADTS 3.1.1.3.4.1.9)
SHOW_DELETED_OID = "1.2.840.113556.1.4.417"


def _dn_key(dn: str) -> str:
    """A DN for suffix comparison: lower case, no spaces around the RDN separators."""
    return ",".join(part.strip() for part in dn.lower().split(","))


def _values(raw: dict[str, list], name: str) -> list:
    """An attribute's values; names compare case-insensitively, as LDAP's do."""
    if name in raw:
        return raw[name]
    low = name.lower()
    return next((v for k, v in raw.items() if k.lower() == low), [])


def _guid_of(item: dict) -> str | None:
    """The objectGUID of a DirSync result, as dirhook's AD external ids spell it."""
    import uuid

    raw = _values(item.get("raw_attributes") or {}, "objectGUID")
    if raw and isinstance(raw[0], bytes) and len(raw[0]) == 16:
        return str(uuid.UUID(bytes_le=raw[0]))
    dn = item.get("dn") or ""
    if dn.startswith("<GUID="):
        return dn[6:dn.index(">")].lower()
    return None


def common_base(*dns: str) -> str:
    """The deepest entry above all these DNs (compared case-insensitively)."""
    split = [[rdn.strip() for rdn in dn.split(",")][::-1] for dn in dns]
    common = []
    for parts in zip(*split):
        if len({p.lower() for p in parts}) != 1:
            break
        common.append(parts[0])
    return ",".join(reversed(common))


def _entry_uuid(entry: SourceEntry) -> str:
    values = _values(entry.attributes, "entryUUID") or [b""]
    return values[0].decode() if isinstance(values[0], bytes) else str(values[0])


def _parse_time(value: str) -> datetime:
    # modifyTimestamp may carry fractions ("20261129014416.0Z" on AD).
    return datetime.strptime(value.split(".")[0].rstrip("Z") + "Z", GENERALIZED_TIME).replace(tzinfo=timezone.utc)


class LdapSource:
    def __init__(self, config: LdapConfig, password: str | None, mapping_overrides: dict[str, Any] | None,
                 timestamp_overlap_seconds: int = 300):
        self.config = config
        self._password = password
        self._mapping_overrides = mapping_overrides
        self.mapping = effective_mapping(config.flavour, mapping_overrides)
        self.overlap = timedelta(seconds=timestamp_overlap_seconds)
        self._conn = None
        self.syncrepl = self.dirsync = self.notifications = False  # what the server offers (connect)

    # -- connection -------------------------------------------------------------------------
    def connect(self) -> None:
        import ssl

        import ldap3
        from ldap3.core.exceptions import LDAPException

        parsed = urlparse(self.config.url)
        use_ssl = parsed.scheme == "ldaps"
        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED if self.config.verify_tls else ssl.CERT_NONE)
        server = ldap3.Server(
            parsed.hostname, port=parsed.port or (636 if use_ssl else 389), use_ssl=use_ssl, tls=tls,
            get_info=ldap3.NONE, connect_timeout=int(self.config.timeout_seconds),
        )
        conn = ldap3.Connection(
            server, user=self.config.bind_dn, password=self._password, auto_bind=ldap3.AUTO_BIND_NONE,
            read_only=True, raise_exceptions=False, receive_timeout=int(self.config.timeout_seconds * 6),
            auto_referrals=False, return_empty_attributes=False,
        )
        use_fast_entries(conn)
        where = f"{parsed.hostname}:{server.port}"
        try:
            conn.open()
            if self.config.start_tls and not conn.start_tls():
                raise SourceUnavailable(f"StartTLS with {where} failed: {conn.result.get('description')}")
            if not conn.bind():
                desc = conn.result.get("description") or "bind refused"
                if desc in ("invalidCredentials", "inappropriateAuthentication", "invalidDNSyntax",
                            "strongerAuthRequired", "confidentialityRequired"):
                    raise SourceAuthError(f"LDAP bind as {self.config.bind_dn!r} to {where} failed: {desc}")
                raise SourceUnavailable(f"LDAP bind as {self.config.bind_dn!r} to {where} failed: {desc}")
        except LDAPException as exc:
            raise SourceUnavailable(f"cannot reach LDAP server {where}: {exc}") from None
        self._conn = conn
        controls = self._supported_controls()
        active_directory = self.config.flavour == "active_directory"
        self.syncrepl = not active_directory and syncrepl.SYNC_REQUEST_OID in controls
        self.dirsync = active_directory and DIRSYNC_OID in controls
        self.notifications = active_directory and NOTIFICATION_OID in controls

    def _supported_controls(self) -> set[str]:
        """The control OIDs the root DSE lists (read once per connection)."""
        import ldap3

        ok = self._conn.search("", "(objectClass=*)", search_scope=ldap3.BASE, attributes=["supportedControl"],
                               dereference_aliases=ldap3.DEREF_NEVER)
        if not ok or not self._conn.response:
            return set()
        raw = self._conn.response[0].get("raw_attributes", {})
        return {v.decode() if isinstance(v, bytes) else str(v) for v in _values(raw, "supportedControl")}

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.unbind()
            finally:
                self._conn = None

    # -- reading ----------------------------------------------------------------------------
    def _paged(self, base: str, ldap_filter: str, attributes: list[str]) -> Iterator[tuple[str, dict[str, list[bytes]]]]:
        import ldap3
        from ldap3.core.exceptions import LDAPException

        conn = self._conn
        cookie = None
        while True:
            try:
                ok = conn.search(
                    base, ldap_filter, search_scope=ldap3.SUBTREE, attributes=attributes,
                    paged_size=self.config.page_size, paged_cookie=cookie,
                    dereference_aliases=ldap3.DEREF_NEVER,
                )
            except LDAPException as exc:
                raise SourceUnavailable(f"LDAP search under {base!r} failed: {exc}") from None
            result = conn.result
            if not ok and result.get("result") not in (0, None):
                desc = result.get("description")
                if desc == "noSuchObject":
                    raise SourceConfigError(f"base DN {base!r} does not exist on the server")
                if desc in ("filterError", "protocolError"):
                    raise SourceConfigError(f"the server rejected the search under {base!r}: {desc}")
                raise SourceUnavailable(f"LDAP search under {base!r} failed: {desc} {result.get('message')}")
            for item in conn.response or ():
                if item.get("type") == "searchResEntry":
                    yield item["dn"], item["raw_attributes"]
            try:
                cookie = result["controls"][PAGED_RESULTS_OID]["value"]["cookie"]
            except (KeyError, TypeError):
                cookie = None
            if not cookie:
                return

    def _entries(self, base: str, ldap_filter: str, attributes: list[str], cursor: dict[str, Any]) -> Iterator[SourceEntry]:
        for dn, raw in self._paged(base, ldap_filter, attributes):
            stamp = _values(raw, "modifyTimestamp") or _values(raw, "whenChanged")
            if stamp:
                value = stamp[0].decode() if isinstance(stamp[0], bytes) else str(stamp[0])
                if value > cursor.get("modify_timestamp", ""):
                    cursor["modify_timestamp"] = value
            yield SourceEntry(ref=dn, attributes=raw)

    def _ids(self, base: str, ldap_filter: str) -> Iterator[str]:
        from dirhook.normalize import TRANSFORMS

        attr = self.config.external_id_attribute
        transform = TRANSFORMS["guid" if attr == "objectGUID" else "first"]
        for _dn, raw in self._paged(base, ldap_filter, [attr]):
            ext = transform(_values(raw, attr))
            if ext:
                yield ext

    # -- syncrepl (RFC 4533) -------------------------------------------------------------------
    def _sync_search(self, base: str, ldap_filter: str, attributes: list[str], cookie: str | None):
        """One refreshOnly round: (changed entries, deleted entryUUIDs, present entryUUIDs
        or None when the server sent deletions itself, the new cookie)."""
        import ldap3
        from ldap3.core.exceptions import LDAPException

        try:
            ok = self._conn.search(base, ldap_filter, search_scope=ldap3.SUBTREE, attributes=attributes,
                                   controls=[syncrepl.sync_request_control(syncrepl.REFRESH_ONLY, cookie)],
                                   dereference_aliases=ldap3.DEREF_NEVER)
        except LDAPException as exc:
            raise SourceUnavailable(f"LDAP sync search under {base!r} failed: {exc}") from None
        result = self._conn.result
        if not ok and result.get("result") not in (0, None):  # no entry is not an error
            desc = result.get("description")
            if desc == "noSuchObject":
                raise SourceConfigError(f"base DN {base!r} does not exist on the server")
            raise SourceUnavailable(f"LDAP sync search under {base!r} failed: {desc} {result.get('message')}")
        entries, deleted, present, new_cookie = [], set(), set(), None
        for item in self._conn.response or ():
            if item.get("type") == "intermediateResponse" and item.get("responseName") == syncrepl.SYNC_INFO_OID:
                info = syncrepl.decode_info(item["responseValue"])
                deleted.update(info.deleted)
                present.update(info.present)
                new_cookie = info.cookie or new_cookie
            elif item.get("type") == "searchResEntry":
                control = (item.get("controls") or {}).get(syncrepl.SYNC_STATE_OID)
                state = syncrepl.decode_state(control["value"]) if control else None
                if state and state.state == "delete":
                    deleted.add(state.entry_uuid)
                elif state and state.state == "present":
                    present.add(state.entry_uuid)
                else:
                    entries.append(SourceEntry(ref=item["dn"], attributes=item["raw_attributes"]))
        done = (result.get("controls") or {}).get(syncrepl.SYNC_DONE_OID)
        refresh_deletes = True
        if done:
            done_cookie, refresh_deletes = syncrepl.decode_done(done["value"])
            new_cookie = done_cookie or new_cookie
        # Without refreshDeletes the server ran a present phase: whatever it did not name
        # as present (nor send as changed) is gone.
        if not refresh_deletes or present:
            present.update(_entry_uuid(e) for e in entries)
            return entries, deleted, present, new_cookie or cookie
        return entries, deleted, None, new_cookie or cookie

    def _fresh_cookie(self, base: str) -> str | None:
        """The server's state now, as a cookie: a refreshOnly search that matches nothing."""
        _entries, _deleted, _present, cookie = self._sync_search(
            base, "(entryUUID=00000000-0000-0000-0000-000000000000)", ["1.1"], None)
        return cookie

    def _syncrepl_changes(self, cursor: dict[str, Any], user_attrs: list[str], group_attrs: list[str]) -> Changes:
        cfg = self.config
        group_base = cfg.group_base_dn or cfg.user_base_dn
        groups, deleted_groups, present_groups, group_cookie = self._sync_search(
            group_base, cfg.group_filter, group_attrs, cursor["sync_groups"])
        users, deleted_users, present_users, user_cookie = self._sync_search(
            cfg.user_base_dn, cfg.user_filter, user_attrs, cursor["sync_users"])
        return Changes(
            full=False, groups=iter(groups), users=iter(users),
            user_ids=(lambda: present_users) if present_users is not None else None,
            group_ids=(lambda: present_groups) if present_groups is not None else None,
            deleted_user_ids=deleted_users, deleted_group_ids=deleted_groups,
            next_cursor={**cursor, "sync_users": user_cookie, "sync_groups": group_cookie})

    # -- Active Directory: DirSync ------------------------------------------------------------
    def _naming_context(self) -> str:
        """DirSync runs at the root of the naming context (a base below it is error 50)."""
        base = self.config.user_base_dn
        return ",".join(p for p in base.split(",") if p.strip().lower().startswith("dc="))

    def _dirsync_round(self, cookie: bytes | None, attributes: list[str]) -> tuple[list[dict], bytes]:
        """Every object changed since the cookie (only the changed attributes among those
        asked for), and the new cookie."""
        from ldap3.core.exceptions import LDAPException

        try:
            ds = self._conn.extend.microsoft.dir_sync(self._naming_context(), "(objectClass=*)",
                                                      attributes=attributes, cookie=cookie, incremental_values=False)
            found = []
            while ds.more_results:
                found += [r for r in ds.loop() if r.get("type") == "searchResEntry"]
        except LDAPException as exc:
            raise SourceUnavailable(f"DirSync under {self._naming_context()!r} failed: {exc}") from None
        return found, ds.cookie

    def _read_in_scope(self, guid: str, base: str, ldap_filter: str, attributes: list[str]) -> SourceEntry | None:
        """The whole current entry of a changed object, if it is under ``base`` and matches
        ``ldap_filter`` (DirSync sends only changed attributes: not enough to filter on)."""
        import ldap3

        self._conn.search(f"<GUID={guid}>", ldap_filter, search_scope=ldap3.BASE, attributes=attributes,
                          dereference_aliases=ldap3.DEREF_NEVER)
        for item in self._conn.response or ():
            if item.get("type") == "searchResEntry" and item["dn"].lower().endswith(base.lower()):
                return SourceEntry(ref=item["dn"], attributes=item["raw_attributes"])
        return None

    def _dirsync_changes(self, cursor: dict[str, Any], user_attrs: list[str], group_attrs: list[str]) -> Changes:
        import base64

        cfg = self.config
        group_base = cfg.group_base_dn or cfg.user_base_dn
        # DirSync returns an object when one of the attributes asked for changed: ask for
        # every attribute the mappings read (not "*": on AD that includes noise like logonCount).
        watched = sorted({a for a in user_attrs + group_attrs if a not in ("*", "+")} | {"objectGUID", "isDeleted"})
        changed, cookie = self._dirsync_round(base64.b64decode(cursor["dirsync"]), watched)
        users, groups, deleted = [], [], set()
        for item in changed:
            guid = _guid_of(item)
            if guid is None:
                continue
            if _values(item.get("raw_attributes") or {}, "isDeleted") in ([b"TRUE"], ["TRUE"]):
                deleted.add(guid)
                continue
            user = self._read_in_scope(guid, cfg.user_base_dn, cfg.user_filter, user_attrs)
            group = None if user else self._read_in_scope(guid, group_base, cfg.group_filter, group_attrs)
            if user:
                users.append(user)
            elif group:
                groups.append(group)
            else:
                deleted.add(guid)  # moved out of the bases or filters: gone for us (unknown ids are ignored)
        return Changes(full=False, groups=iter(groups), users=iter(users), deleted_user_ids=set(deleted),
                       deleted_group_ids=set(deleted),
                       next_cursor={**cursor, "dirsync": base64.b64encode(cookie).decode()})

    def _fresh_dirsync_cookie(self) -> str:
        import base64

        _changed, cookie = self._dirsync_round(None, ["objectGUID"])
        return base64.b64encode(cookie).decode()

    # -- live: refreshAndPersist (OpenLDAP) or change notifications (Active Directory) ------------
    @property
    def can_listen(self) -> bool:
        """Whether the connected server can announce changes (syncrepl, or AD's notifications)."""
        return self.syncrepl or self.notifications

    def _live_search(self, cookie: str | None) -> tuple[str, str, list[str], list, Callable[[str], bool]]:
        """(base, filter, attributes, controls, whether an announced DN concerns this directory)."""
        cfg = self.config
        group_base = cfg.group_base_dn or cfg.user_base_dn
        if self.notifications:
            # AD allows only "(objectClass=*)" with notifications, and a subtree search at a
            # naming context's root: every object of the domain is announced, so the DN
            # decides. Show-deleted makes deletions announced too (as the tombstone, moved
            # to CN=Deleted Objects).
            root = self._naming_context()
            scopes = tuple(_dn_key(b) for b in (cfg.user_base_dn, group_base, f"CN=Deleted Objects,{root}"))
            return (root, "(objectClass=*)", ["objectGUID"],
                    [(NOTIFICATION_OID, True, None), (SHOW_DELETED_OID, False, None)],
                    lambda dn: _dn_key(dn).endswith(scopes))
        return (common_base(cfg.user_base_dn, group_base), f"(|{cfg.user_filter}{cfg.group_filter})", ["1.1"],
                [syncrepl.sync_request_control(syncrepl.REFRESH_AND_PERSIST, cookie)], lambda _dn: True)

    def listen(self, cookie: str | None, on_change, keep_going) -> None:
        """Holds a persistent search over the users and groups (refreshAndPersist from the
        syncrepl ``cookie`` on OpenLDAP, change notifications on Active Directory) and calls
        ``on_change()`` for every change the server announces, while ``keep_going()``; the
        pass that follows reads the changes themselves (with its stored cookie)."""
        import queue

        import ldap3

        cfg = self.config
        parsed = urlparse(cfg.url)
        server = self._conn.server
        base, wanted, attributes, controls, concerns = self._live_search(cookie)
        conn = ldap3.Connection(server, user=cfg.bind_dn, password=self._password, client_strategy=ldap3.ASYNC_STREAM,
                                auto_bind=ldap3.AUTO_BIND_NONE, read_only=True, auto_referrals=False)
        conn.open()
        # The socket keeps the connect timeout, and ldap3's receiver thread ends the
        # connection at the first quiet spell that long (seen: a listener dropped every
        # 10 s). A quiet socket is normal here, so its reads block; the thread's current
        # read is answered by the bind. (ldap3's receive_timeout is no way out: with it the
        # thread retries a closed socket forever, at full CPU.)
        conn.socket.settimeout(None)
        if cfg.start_tls:
            conn.start_tls()
        if not conn.bind():
            raise SourceUnavailable(f"LDAP bind for the live listener at {parsed.hostname} failed")
        conn.strategy.streaming = False  # changes go to strategy.events
        message_id = None
        try:
            with conn.strategy.async_lock:
                message_id = conn.search(base, wanted, search_scope=ldap3.SUBTREE, attributes=attributes,
                                         controls=controls, dereference_aliases=ldap3.DEREF_NEVER)
                conn.strategy.persistent_search_message_id = message_id
            while keep_going():
                try:
                    event = conn.strategy.events.get(timeout=0.25)
                except queue.Empty:
                    if conn.closed:
                        raise SourceUnavailable("the LDAP server closed the live listener's connection"
                                                + (f": {conn.last_error}" if conn.last_error else ""))
                    continue
                if event.get("type") == "searchResEntry" and concerns(event.get("dn") or ""):
                    on_change()
                elif event.get("type") == "searchResDone":  # a persistent search ends only on error
                    raise SourceUnavailable(f"the LDAP server ended the live search: {event.get('description')} "
                                            f"{event.get('message') or ''}".strip())
        finally:
            for stop in ((lambda: conn.abandon(message_id)) if message_id is not None else None, conn.unbind):
                try:
                    if stop is not None:
                        stop()
                except Exception:  # the connection may be gone already
                    pass

    def changes(self, cursor: dict[str, Any] | None, full: bool) -> Changes:
        cfg = self.config
        group_base = cfg.group_base_dn or cfg.user_base_dn
        stamp_attr = "whenChanged" if cfg.flavour == "active_directory" else "modifyTimestamp"
        user_attrs = requested_attributes(self.mapping["user"], [stamp_attr])
        group_attrs = requested_attributes(self.mapping["group"], [stamp_attr])
        if self.syncrepl and not full and (cursor or {}).get("sync_users") and (cursor or {}).get("sync_groups"):
            return self._syncrepl_changes(cursor, user_attrs, group_attrs)
        if self.dirsync and not full and (cursor or {}).get("dirsync"):
            return self._dirsync_changes(cursor, user_attrs, group_attrs)
        since = (cursor or {}).get("modify_timestamp")
        full = full or not since or (self.syncrepl and not (cursor or {}).get("sync_users")) \
            or (self.dirsync and not (cursor or {}).get("dirsync"))
        user_filter, group_filter = cfg.user_filter, cfg.group_filter
        if not full:
            start = (_parse_time(since) - self.overlap).strftime(GENERALIZED_TIME)
            if cfg.flavour == "active_directory":
                start = start[:-1] + ".0Z"
            user_filter = f"(&{cfg.user_filter}({stamp_attr}>={start}))"
            group_filter = f"(&{cfg.group_filter}({stamp_attr}>={start}))"
        next_cursor: dict[str, Any] = {"modify_timestamp": since or ""}
        if self.dirsync and full:
            next_cursor["dirsync"] = self._fresh_dirsync_cookie()  # before reading, as for syncrepl
        if self.syncrepl and full:
            # Taken before reading: a change made while the pass reads comes again next
            # time (the content hash makes that free), none is lost.
            next_cursor["sync_users"] = self._fresh_cookie(cfg.user_base_dn)
            next_cursor["sync_groups"] = self._fresh_cookie(group_base)
        if full:  # every user: read and normalized in a second process (ldap_reader.py)
            users = iter(UserReader(cfg.model_dump(), self._password, self._mapping_overrides, cfg.user_base_dn,
                                    user_filter, user_attrs, next_cursor, cfg.timeout_seconds * 6))
        else:
            users = self._entries(cfg.user_base_dn, user_filter, user_attrs, next_cursor)
        return Changes(
            full=full,
            groups=self._entries(group_base, group_filter, group_attrs, next_cursor),
            users=users,
            user_ids=None if full else (lambda: self._ids(cfg.user_base_dn, cfg.user_filter)),
            group_ids=None if full else (lambda: self._ids(group_base, cfg.group_filter)),
            next_cursor=next_cursor,
        )
