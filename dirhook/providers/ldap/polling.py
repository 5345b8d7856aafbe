"""Reading by listing: what every LDAP server can do. Incremental passes ask for entries
changed since the newest modifyTimestamp (whenChanged on AD) seen, less an overlap for
clock skew and replication lag; deletions are found by listing every external id."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from dirhook.providers.base import SourceEntry
from dirhook.providers.ldap.config import LdapConfig
from dirhook.providers.ldap.connection import paged, paged_items, values

GENERALIZED_TIME = "%Y%m%d%H%M%SZ"


def entries(
    conn: Any, config: LdapConfig, base: str, ldap_filter: str, attributes: list[str], cursor: dict[str, Any]
) -> Iterator[SourceEntry]:
    """The entries, keeping the newest change time seen in ``cursor["modify_timestamp"]``.
    Entries the connection recognized unchanged (wire.recognize_records) come by their hash
    alone: their change time is no newer than the pass that stored them saw."""
    for item in paged_items(conn, base, ldap_filter, attributes, config.page_size):
        if item.get("unchanged"):
            yield SourceEntry(ref="", attributes={}, record_hash=item["record_hash"], unchanged=True)
            continue
        raw = item["raw_attributes"]
        stamp = values(raw, "modifyTimestamp") or values(raw, "whenChanged")
        if stamp:
            value = stamp[0].decode() if isinstance(stamp[0], bytes) else str(stamp[0])
            if value > cursor.get("modify_timestamp", ""):
                cursor["modify_timestamp"] = value
        yield SourceEntry(ref=item["dn"], attributes=raw, record_hash=item.get("record_hash"))


def external_ids(conn: Any, config: LdapConfig, base: str, ldap_filter: str) -> Iterator[str]:
    """The external id of every entry (for deletion detection)."""
    from dirhook.normalize import TRANSFORMS

    attr = config.external_id_attribute
    transform = TRANSFORMS["guid" if attr == "objectGUID" else "first"]
    for _dn, raw in paged(conn, base, ldap_filter, [attr], config.page_size):
        ext = transform(values(raw, attr))
        if ext:
            yield ext


def parse_time(value: str) -> datetime:
    # modifyTimestamp may carry fractions ("20261129014416.0Z" on AD).
    return datetime.strptime(value.split(".")[0].rstrip("Z") + "Z", GENERALIZED_TIME).replace(tzinfo=UTC)


def changed_since(config: LdapConfig, ldap_filter: str, since: str, overlap: timedelta) -> str:
    """``ldap_filter`` narrowed to entries changed since ``since`` (less ``overlap``)."""
    start = (parse_time(since) - overlap).strftime(GENERALIZED_TIME)
    if config.active_directory:
        start = start[:-1] + ".0Z"
    return f"(&{ldap_filter}({config.timestamp_attribute}>={start}))"
