"""Binding to an LDAP server, reading its root DSE, and paged searches, with failures
turned into the SourceError kinds an operator can act on."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlparse

from dirhook.errors import SourceAuthError, SourceConfigError, SourceUnavailable
from dirhook.providers.ldap.config import LdapConfig
from dirhook.providers.ldap.wire import use_fast_entries

PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"
# Bind results that no retry fixes: the credentials or the way of binding are wrong.
AUTH_FAILURES = (
    "invalidCredentials",
    "inappropriateAuthentication",
    "invalidDNSyntax",
    "strongerAuthRequired",
    "confidentialityRequired",
)

RawAttributes = dict[str, list[Any]]


def values(raw: Mapping[str, list[Any]], name: str) -> list[Any]:
    """An attribute's values; names compare case-insensitively, as LDAP's do."""
    if name in raw:
        return raw[name]
    low = name.lower()
    return next((v for k, v in raw.items() if k.lower() == low), [])


def open_connection(config: LdapConfig, password: str | None, allow_private: bool = True) -> Any:
    """A bound, read-only ldap3 connection (synchronous strategy, fast entry decoding), to a
    host the directory source policy allows (checked on what it resolves to now)."""
    import ssl

    import ldap3
    from ldap3.core.exceptions import LDAPException

    from dirhook.source_policy import SourceTargetRefused, check_source_host

    parsed = urlparse(config.url)
    try:
        check_source_host(parsed.hostname or "", allow_private, "DIRHOOK_ALLOW_PRIVATE_DIRECTORIES")
    except SourceTargetRefused as exc:
        raise SourceConfigError(f"the directory's LDAP server {exc}") from None
    use_ssl = parsed.scheme == "ldaps"
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED if config.verify_tls else ssl.CERT_NONE)
    server = ldap3.Server(
        parsed.hostname,
        port=parsed.port or (636 if use_ssl else 389),
        use_ssl=use_ssl,
        tls=tls,
        get_info=ldap3.NONE,
        connect_timeout=int(config.timeout_seconds),
    )
    conn = ldap3.Connection(
        server,
        user=config.bind_dn,
        password=password,
        auto_bind=ldap3.AUTO_BIND_NONE,
        read_only=True,
        raise_exceptions=False,
        receive_timeout=int(config.timeout_seconds * 6),
        auto_referrals=False,
        return_empty_attributes=False,
    )
    use_fast_entries(conn)
    where = f"{parsed.hostname}:{server.port}"
    opened = False
    try:
        conn.open()
        opened = True
        # The bind is the first answer: wait for it as long as for a connection, not for a search.
        conn.socket.settimeout(config.timeout_seconds)
        if config.start_tls and not conn.start_tls():
            raise SourceUnavailable(f"StartTLS with {where} failed: {conn.result.get('description')}")
        if not conn.bind():
            desc = conn.result.get("description") or "bind refused"
            kind = SourceAuthError if desc in AUTH_FAILURES else SourceUnavailable
            raise kind(f"LDAP bind as {config.bind_dn!r} to {where} failed: {desc}")
        conn.socket.settimeout(config.timeout_seconds * 6)
    except LDAPException as exc:
        if opened and "timed out" in str(exc):
            raise SourceUnavailable(
                f"the server at {where} accepted the connection but did not answer the LDAP bind within "
                f"{config.timeout_seconds:g} s: is it an LDAP server ({parsed.scheme}://, the port)?"
            ) from None
        raise SourceUnavailable(f"cannot reach LDAP server {where}: {exc}") from None
    except (SourceConfigError, SourceUnavailable, SourceAuthError):
        raise
    except Exception as exc:  # ldap3 decoding what is not LDAP: KeyError, PyAsn1Error, IndexError…
        raise SourceConfigError(
            f"the server at {where} did not answer as LDAP ({type(exc).__name__} decoding its answer): "
            f"{parsed.scheme}:// to the right port?"
        ) from None
    return conn


def supported_controls(conn: Any) -> set[str]:
    """The control OIDs the root DSE lists (read once per connection)."""
    import ldap3

    ok = conn.search(
        "",
        "(objectClass=*)",
        search_scope=ldap3.BASE,
        attributes=["supportedControl"],
        dereference_aliases=ldap3.DEREF_NEVER,
    )
    if not ok or not conn.response:
        return set()
    raw = conn.response[0].get("raw_attributes", {})
    return {v.decode() if isinstance(v, bytes) else str(v) for v in values(raw, "supportedControl")}


def raise_for_search(result: dict[str, Any], base: str, what: str = "LDAP search") -> None:
    """A failed search's result as the error an operator can act on (no entry is no error)."""
    if result.get("result") in (0, None):
        return
    desc = result.get("description")
    if desc == "noSuchObject":
        raise SourceConfigError(f"base DN {base!r} does not exist on the server")
    if desc in ("filterError", "protocolError"):
        raise SourceConfigError(f"the server rejected the search under {base!r}: {desc}")
    raise SourceUnavailable(f"{what} under {base!r} failed: {desc} {result.get('message')}")


def paged(
    conn: Any, base: str, ldap_filter: str, attributes: list[str], page_size: int
) -> Iterator[tuple[str, RawAttributes]]:
    """Every entry under ``base`` matching the filter, a page at a time (simple paged results)."""
    for item in paged_items(conn, base, ldap_filter, attributes, page_size):
        yield item["dn"], item["raw_attributes"]


def paged_items(
    conn: Any, base: str, ldap_filter: str, attributes: list[str], page_size: int
) -> Iterator[dict[str, Any]]:
    """``paged``'s entries as ldap3's responses (dirhook.providers.ldap.wire adds
    ``record_hash`` and ``unchanged`` to those it decodes)."""
    import ldap3
    from ldap3.core.exceptions import LDAPException

    cookie = None
    while True:
        try:
            ok = conn.search(
                base,
                ldap_filter,
                search_scope=ldap3.SUBTREE,
                attributes=attributes,
                paged_size=page_size,
                paged_cookie=cookie,
                dereference_aliases=ldap3.DEREF_NEVER,
            )
        except LDAPException as exc:
            raise SourceUnavailable(f"LDAP search under {base!r} failed: {exc}") from None
        result = conn.result
        if not ok:
            raise_for_search(result, base)
        for item in conn.response or ():
            if item.get("type") == "searchResEntry":
                yield item
        try:
            cookie = result["controls"][PAGED_RESULTS_OID]["value"]["cookie"]
        except (KeyError, TypeError):
            cookie = None
        if not cookie:
            return
