"""OpenLDAP's incremental passes: syncrepl (RFC 4533) refreshOnly searches from the stored
cookies, one for the users' base and one for the groups', deletions included."""

from __future__ import annotations

from typing import Any

from dirhook.errors import SourceUnavailable
from dirhook.providers.base import Changes, SourceEntry
from dirhook.providers.ldap import syncrepl_codec as codec
from dirhook.providers.ldap.config import LdapConfig
from dirhook.providers.ldap.connection import raise_for_search, values

# A filter no entry matches: a search with it returns only the server's current cookie.
NO_ENTRY = "(entryUUID=00000000-0000-0000-0000-000000000000)"


def _entry_uuid(entry: SourceEntry) -> str:
    found = values(entry.attributes, "entryUUID") or [b""]
    return found[0].decode() if isinstance(found[0], bytes) else str(found[0])


def sync_search(
    conn: Any, base: str, ldap_filter: str, attributes: list[str], cookie: str | None
) -> tuple[list[SourceEntry], set[str], set[str] | None, str | None]:
    """One refreshOnly round: (changed entries, deleted entryUUIDs, present entryUUIDs
    or None when the server sent deletions itself, the new cookie)."""
    import ldap3
    from ldap3.core.exceptions import LDAPException

    try:
        ok = conn.search(
            base,
            ldap_filter,
            search_scope=ldap3.SUBTREE,
            attributes=attributes,
            controls=[codec.sync_request_control(codec.REFRESH_ONLY, cookie)],
            dereference_aliases=ldap3.DEREF_NEVER,
        )
    except LDAPException as exc:
        raise SourceUnavailable(f"LDAP sync search under {base!r} failed: {exc}") from None
    result = conn.result
    if not ok:
        raise_for_search(result, base, "LDAP sync search")
    entries: list[SourceEntry] = []
    deleted: set[str] = set()
    present: set[str] = set()
    new_cookie = None
    for item in conn.response or ():
        if item.get("type") == "intermediateResponse" and item.get("responseName") == codec.SYNC_INFO_OID:
            info = codec.decode_info(item["responseValue"])
            deleted.update(info.deleted)
            present.update(info.present)
            new_cookie = info.cookie or new_cookie
        elif item.get("type") == "searchResEntry":
            control = (item.get("controls") or {}).get(codec.SYNC_STATE_OID)
            state = codec.decode_state(control["value"]) if control else None
            if state and state.state == "delete":
                deleted.add(state.entry_uuid)
            elif state and state.state == "present":
                present.add(state.entry_uuid)
            else:
                entries.append(SourceEntry(ref=item["dn"], attributes=item["raw_attributes"]))
    done = (result.get("controls") or {}).get(codec.SYNC_DONE_OID)
    refresh_deletes = True
    if done:
        done_cookie, refresh_deletes = codec.decode_done(done["value"])
        new_cookie = done_cookie or new_cookie
    # Without refreshDeletes the server ran a present phase: whatever it did not name
    # as present (nor send as changed) is gone.
    if not refresh_deletes or present:
        present.update(_entry_uuid(e) for e in entries)
        return entries, deleted, present, new_cookie or cookie
    return entries, deleted, None, new_cookie or cookie


def fresh_cookie(conn: Any, base: str) -> str | None:
    """The server's state now, as a cookie: a refreshOnly search that matches nothing."""
    return sync_search(conn, base, NO_ENTRY, ["1.1"], None)[3]


def syncrepl_changes(
    conn: Any, config: LdapConfig, cursor: dict[str, Any], user_attrs: list[str], group_attrs: list[str]
) -> Changes:
    groups, deleted_groups, present_groups, group_cookie = sync_search(
        conn, config.groups_base, config.group_filter, group_attrs, cursor["sync_groups"]
    )
    users, deleted_users, present_users, user_cookie = sync_search(
        conn, config.user_base_dn, config.user_filter, user_attrs, cursor["sync_users"]
    )
    return Changes(
        full=False,
        groups=iter(groups),
        users=iter(users),
        user_ids=(lambda: present_users) if present_users is not None else None,
        group_ids=(lambda: present_groups) if present_groups is not None else None,
        deleted_user_ids=deleted_users,
        deleted_group_ids=deleted_groups,
        next_cursor={**cursor, "sync_users": user_cookie, "sync_groups": group_cookie},
    )
