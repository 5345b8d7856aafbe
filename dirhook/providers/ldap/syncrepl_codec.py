"""LDAP Content Synchronization (RFC 4533, "syncrepl"): the control values, BER-encoded and
decoded with pyasn1 (ldap3 knows the control's OID but not its value). Pure functions.

- the Sync Request Control (1.3.6.1.4.1.4203.1.9.1.1) asks for refreshOnly (the changes
  since a cookie, then done) or refreshAndPersist (then every change as it happens);
- the Sync State Control (…1.2) on each entry says present/add/modify/delete;
- the Sync Done Control (…1.3) on the search's end carries the new cookie;
- the Sync Info Message (…1.4, an intermediate response) carries a new cookie or a
  syncIdSet: the entryUUIDs of deleted entries.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import namedtype, namedval, tag, univ

SYNC_REQUEST_OID = "1.3.6.1.4.1.4203.1.9.1.1"
SYNC_STATE_OID = "1.3.6.1.4.1.4203.1.9.1.2"
SYNC_DONE_OID = "1.3.6.1.4.1.4203.1.9.1.3"
SYNC_INFO_OID = "1.3.6.1.4.1.4203.1.9.1.4"

REFRESH_ONLY, REFRESH_AND_PERSIST = 1, 3
STATES = {0: "present", 1: "add", 2: "modify", 3: "delete"}


class _Mode(univ.Enumerated):
    namedValues = namedval.NamedValues(("refreshOnly", 1), ("refreshAndPersist", 3))


class _SyncRequestValue(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("mode", _Mode()),
        namedtype.OptionalNamedType("cookie", univ.OctetString()),
        namedtype.DefaultedNamedType("reloadHint", univ.Boolean(False)),
    )


class _SyncStateValue(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("state", univ.Enumerated()),
        namedtype.NamedType("entryUUID", univ.OctetString()),
        namedtype.OptionalNamedType("cookie", univ.OctetString()),
    )


class _SyncDoneValue(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("cookie", univ.OctetString()),
        namedtype.DefaultedNamedType("refreshDeletes", univ.Boolean(False)),
    )


def _tagged(n: int, component: Any) -> Any:
    return component.subtype(implicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, n))


class _RefreshPhase(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("cookie", univ.OctetString()),
        namedtype.DefaultedNamedType("refreshDone", univ.Boolean(True)),
    )


class _SyncIdSet(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("cookie", univ.OctetString()),
        namedtype.DefaultedNamedType("refreshDeletes", univ.Boolean(False)),
        namedtype.NamedType("syncUUIDs", univ.SetOf(componentType=univ.OctetString())),
    )


class _SyncInfoValue(univ.Choice):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType(
            "newcookie", univ.OctetString().subtype(implicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatSimple, 0))
        ),
        namedtype.NamedType(
            "refreshDelete",
            _RefreshPhase().subtype(implicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, 1)),
        ),
        namedtype.NamedType(
            "refreshPresent",
            _RefreshPhase().subtype(implicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, 2)),
        ),
        namedtype.NamedType(
            "syncIdSet", _SyncIdSet().subtype(implicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, 3))
        ),
    )


def sync_request_control(mode: int, cookie: str | None = None) -> tuple[str, bool, bytes]:
    """The control as ldap3 takes it: (OID, criticality, BER value)."""
    value = _SyncRequestValue()
    value["mode"] = mode
    if cookie:
        value["cookie"] = cookie.encode()
    return SYNC_REQUEST_OID, True, encoder.encode(value)


def _text(value: Any) -> str | None:
    return bytes(value).decode() if value is not None and value.isValue else None


@dataclass
class SyncState:
    state: str
    entry_uuid: str
    cookie: str | None


def decode_state(raw: bytes) -> SyncState:
    value, _ = decoder.decode(raw, asn1Spec=_SyncStateValue())
    return SyncState(
        STATES.get(int(value["state"]), "unknown"),
        str(uuid.UUID(bytes=bytes(value["entryUUID"]))),
        _text(value["cookie"]),
    )


def decode_done(raw: bytes) -> tuple[str | None, bool]:
    """(cookie, refreshDeletes)."""
    value, _ = decoder.decode(raw, asn1Spec=_SyncDoneValue())
    return _text(value["cookie"]), bool(value["refreshDeletes"])


@dataclass
class SyncInfo:
    cookie: str | None = None
    deleted: list[str] = field(default_factory=list)  # entryUUIDs of a syncIdSet with refreshDeletes
    present: list[str] = field(default_factory=list)  # …without it: entries still there (present phase)
    phase: str | None = None  # "refreshDelete" or "refreshPresent" when that phase ended


def decode_info(raw: bytes) -> SyncInfo:
    value, _ = decoder.decode(raw, asn1Spec=_SyncInfoValue())
    name = value.getName()
    chosen = value.getComponent()
    if name == "newcookie":
        return SyncInfo(cookie=bytes(chosen).decode())
    if name in ("refreshDelete", "refreshPresent"):
        return SyncInfo(cookie=_text(chosen["cookie"]), phase=name)
    uuids = [str(uuid.UUID(bytes=bytes(u))) for u in chosen["syncUUIDs"]]
    if bool(chosen["refreshDeletes"]):
        return SyncInfo(cookie=_text(chosen["cookie"]), deleted=uuids)
    return SyncInfo(cookie=_text(chosen["cookie"]), present=uuids)
