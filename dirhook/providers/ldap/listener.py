"""The live listener: a persistent search over the directory's users and groups that says
when something changed (refreshAndPersist on OpenLDAP, change notifications on Active
Directory). It reads no change itself: the pass it triggers does, from its stored cookie."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from dirhook.dn import common_base, dn_within, naming_context
from dirhook.errors import SourceUnavailable
from dirhook.providers.ldap import syncrepl_codec as codec
from dirhook.providers.ldap.config import LdapConfig

NOTIFICATION_OID = "1.2.840.113556.1.4.528"  # LDAP_SERVER_NOTIFICATION_OID (MS-ADTS 3.1.1.3.4.1.9)
SHOW_DELETED_OID = "1.2.840.113556.1.4.417"


def live_search(
    config: LdapConfig, notifications: bool, cookie: str | None
) -> tuple[str, str, list[str], list[Any], Callable[[str], bool]]:
    """(base, filter, attributes, controls, whether an announced DN concerns this directory)."""
    if notifications:
        # AD allows only "(objectClass=*)" with notifications, and a subtree search at a
        # naming context's root: every object of the domain is announced, so the DN
        # decides. Show-deleted makes deletions announced too (as the tombstone, moved
        # to CN=Deleted Objects).
        root = naming_context(config.user_base_dn)
        scopes = (config.user_base_dn, config.groups_base, f"CN=Deleted Objects,{root}")
        return (
            root,
            "(objectClass=*)",
            ["objectGUID"],
            [(NOTIFICATION_OID, True, None), (SHOW_DELETED_OID, False, None)],
            lambda dn: any(dn_within(dn, scope) for scope in scopes),
        )
    return (
        common_base(config.user_base_dn, config.groups_base),
        f"(|{config.user_filter}{config.group_filter})",
        ["1.1"],
        [codec.sync_request_control(codec.REFRESH_AND_PERSIST, cookie)],
        lambda _dn: True,
    )


def listen(
    server: Any,
    config: LdapConfig,
    password: str | None,
    notifications: bool,
    cookie: str | None,
    on_change: Callable[[], None],
    keep_going: Callable[[], bool],
) -> None:
    """Holds the persistent search on its own connection to ``server`` and calls
    ``on_change()`` for every change announced, while ``keep_going()``."""
    import queue

    import ldap3

    base, wanted, attributes, controls, concerns = live_search(config, notifications, cookie)
    conn = ldap3.Connection(
        server,
        user=config.bind_dn,
        password=password,
        client_strategy=ldap3.ASYNC_STREAM,
        auto_bind=ldap3.AUTO_BIND_NONE,
        read_only=True,
        auto_referrals=False,
    )
    conn.open()
    # The socket keeps the connect timeout, and ldap3's receiver thread ends the
    # connection at the first quiet spell that long (seen: a listener dropped every
    # 10 s). A quiet socket is normal here, so its reads block; the thread's current
    # read is answered by the bind. (ldap3's receive_timeout is no way out: with it the
    # thread retries a closed socket forever, at full CPU.)
    conn.socket.settimeout(None)
    if config.start_tls:
        conn.start_tls()
    if not conn.bind():
        raise SourceUnavailable(f"LDAP bind for the live listener at {urlparse(config.url).hostname} failed")
    conn.strategy.streaming = False  # changes go to strategy.events
    message_id = None
    try:
        with conn.strategy.async_lock:
            message_id = conn.search(
                base,
                wanted,
                search_scope=ldap3.SUBTREE,
                attributes=attributes,
                controls=controls,
                dereference_aliases=ldap3.DEREF_NEVER,
            )
            conn.strategy.persistent_search_message_id = message_id
        while keep_going():
            try:
                event = conn.strategy.events.get(timeout=0.25)
            except queue.Empty:
                if conn.closed:
                    raise SourceUnavailable(
                        "the LDAP server closed the live listener's connection"
                        + (f": {conn.last_error}" if conn.last_error else "")
                    ) from None
                continue
            if event.get("type") == "searchResEntry" and concerns(event.get("dn") or ""):
                on_change()
            elif event.get("type") == "searchResDone":  # a persistent search ends only on error
                raise SourceUnavailable(
                    f"the LDAP server ended the live search: {event.get('description')} "
                    f"{event.get('message') or ''}".strip()
                )
    finally:
        for stop in ((lambda: conn.abandon(message_id)) if message_id is not None else None, conn.unbind):
            try:
                if stop is not None:
                    stop()
            except Exception:  # the connection may be gone already
                pass
