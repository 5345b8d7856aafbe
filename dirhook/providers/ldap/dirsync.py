"""Active Directory's incremental passes: DirSync (MS-ADTS 3.1.1.3.4.1.3) from the stored
cookie. DirSync names every changed object with only its changed attributes, so each one is
read again whole to decide whether it is (still) in the directory's bases and filters."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from dirhook.dn import dn_within, naming_context
from dirhook.errors import SourceUnavailable
from dirhook.providers.base import Changes, SourceEntry
from dirhook.providers.ldap.config import LdapConfig
from dirhook.providers.ldap.connection import values

DIRSYNC_OID = "1.2.840.113556.1.4.841"


def guid_of(item: dict[str, Any]) -> str | None:
    """The objectGUID of a DirSync result, as dirhook's AD external ids spell it."""
    raw = values(item.get("raw_attributes") or {}, "objectGUID")
    if raw and isinstance(raw[0], bytes) and len(raw[0]) == 16:
        return str(uuid.UUID(bytes_le=raw[0]))
    dn = item.get("dn") or ""
    if dn.startswith("<GUID="):
        return dn[6 : dn.index(">")].lower()
    return None


def dirsync_round(
    conn: Any, config: LdapConfig, cookie: bytes | None, attributes: list[str]
) -> tuple[list[dict[str, Any]], bytes]:
    """Every object changed since the cookie (only the changed attributes among those
    asked for), and the new cookie. DirSync runs at the root of the naming context (a base
    below it is error 50)."""
    from ldap3.core.exceptions import LDAPException

    root = naming_context(config.user_base_dn)
    try:
        ds = conn.extend.microsoft.dir_sync(
            root, "(objectClass=*)", attributes=attributes, cookie=cookie, incremental_values=False
        )
        found = []
        while ds.more_results:
            found += [r for r in ds.loop() if r.get("type") == "searchResEntry"]
    except LDAPException as exc:
        raise SourceUnavailable(f"DirSync under {root!r} failed: {exc}") from None
    return found, ds.cookie


def read_in_scope(conn: Any, guid: str, base: str, ldap_filter: str, attributes: list[str]) -> SourceEntry | None:
    """The whole current entry of a changed object, if it is under ``base`` and matches
    ``ldap_filter`` (DirSync sends only changed attributes: not enough to filter on)."""
    import ldap3

    conn.search(
        f"<GUID={guid}>",
        ldap_filter,
        search_scope=ldap3.BASE,
        attributes=attributes,
        dereference_aliases=ldap3.DEREF_NEVER,
    )
    for item in conn.response or ():
        if item.get("type") == "searchResEntry" and dn_within(item["dn"], base):
            return SourceEntry(ref=item["dn"], attributes=item["raw_attributes"])
    return None


def dirsync_changes(
    conn: Any, config: LdapConfig, cursor: dict[str, Any], user_attrs: list[str], group_attrs: list[str]
) -> Changes:
    # DirSync returns an object when one of the attributes asked for changed: ask for
    # every attribute the mappings read (not "*": on AD that includes noise like logonCount).
    watched = sorted({a for a in user_attrs + group_attrs if a not in ("*", "+")} | {"objectGUID", "isDeleted"})
    changed, cookie = dirsync_round(conn, config, base64.b64decode(cursor["dirsync"]), watched)
    users, groups, deleted = [], [], set()
    for item in changed:
        guid = guid_of(item)
        if guid is None:
            continue
        if values(item.get("raw_attributes") or {}, "isDeleted") in ([b"TRUE"], ["TRUE"]):
            deleted.add(guid)
            continue
        user = read_in_scope(conn, guid, config.user_base_dn, config.user_filter, user_attrs)
        group = None if user else read_in_scope(conn, guid, config.groups_base, config.group_filter, group_attrs)
        if user:
            users.append(user)
        elif group:
            groups.append(group)
        else:
            deleted.add(guid)  # moved out of the bases or filters: gone for us (unknown ids are ignored)
    return Changes(
        full=False,
        groups=iter(groups),
        users=iter(users),
        deleted_user_ids=set(deleted),
        deleted_group_ids=set(deleted),
        next_cursor={**cursor, "dirsync": base64.b64encode(cookie).decode()},
    )


def fresh_dirsync_cookie(conn: Any, config: LdapConfig) -> str:
    """The domain's state now, as a DirSync cookie."""
    _changed, cookie = dirsync_round(conn, config, None, ["objectGUID"])
    return base64.b64encode(cookie).decode()
