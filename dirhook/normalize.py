"""Turn provider records into the normalized model through a directory's attribute mapping.

Pure functions: no I/O, no Temporal. A source record is ``{attribute: [values]}`` with
values as ``bytes`` (LDAP's wire form) or ``str``; attribute names match case-insensitively,
as LDAP's do.
"""

from __future__ import annotations

import base64
import copy
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from dirhook.dn import dn_key
from dirhook.errors import MappingError
from dirhook.jsonenc import dumps_bytes
from dirhook.models import PROFILE_FIELDS, Email, NormalizedGroup, NormalizedUser
from dirhook.providers.entra_records import ENTRA_MAPPING
from dirhook.providers.google_records import GOOGLE_MAPPING
from dirhook.scim.records import SCIM_MAPPING
from dirhook.secret_attributes import is_secret

SourceRecord = Mapping[str, list[Any]]

# Bookkeeping the provider asks for that is not data about the person.
OPERATIONAL_ATTRIBUTES = frozenset(
    a.lower()
    for a in (
        "entryUUID",
        "entryCSN",
        "modifyTimestamp",
        "createTimestamp",
        "uSNChanged",
        "uSNCreated",
        "whenChanged",
        "whenCreated",
        "objectGUID",
        "dn",
        # Active Directory's own bookkeeping: logons and password counters change
        # on every sign-in and would make every pass a user.updated.
        "distinguishedName",
        "name",
        "instanceType",
        "objectCategory",
        "objectSid",
        "sAMAccountType",
        "primaryGroupID",
        "badPasswordTime",
        "badPwdCount",
        "lastLogon",
        "lastLogoff",
        "lastLogonTimestamp",
        "logonCount",
        "pwdLastSet",
        "codePage",
        "countryCode",
        "dSCorePropagationData",
        "msDS-SupportedEncryptionTypes",
        "isCriticalSystemObject",
        "replPropertyMetaData",
    )
)

USER_FIELDS = (*PROFILE_FIELDS, "manager_ref")  # what a user mapping may target
GROUP_FIELDS = ("external_id", "name", "description", "member_refs")

# Default mappings per directory flavour. ``source`` may be a list: the first attribute present wins.
DEFAULT_MAPPINGS: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
    "openldap": {
        "user": {
            "external_id": {"source": "entryUUID"},
            "username": {"source": "uid"},
            "emails": {"source": "mail", "transform": "emails"},
            "given_name": {"source": "givenName"},
            "family_name": {"source": "sn"},
            "display_name": {"source": ["displayName", "cn"]},
            "title": {"source": "title"},
            "department": {"source": "ou"},
            "manager_ref": {"source": "manager"},
        },
        "group": {
            "external_id": {"source": "entryUUID"},
            "name": {"source": "cn"},
            "description": {"source": "description"},
            "member_refs": {"source": ["member", "uniqueMember"], "transform": "all"},
        },
    },
    "active_directory": {
        "user": {
            "external_id": {"source": "objectGUID", "transform": "guid"},
            "username": {"source": ["userPrincipalName", "sAMAccountName"]},
            "emails": {"source": "mail", "transform": "emails"},
            "given_name": {"source": "givenName"},
            "family_name": {"source": "sn"},
            "display_name": {"source": ["displayName", "cn"]},
            "title": {"source": "title"},
            "department": {"source": "department"},
            "active": {"source": "userAccountControl", "transform": "ad_enabled"},
            "manager_ref": {"source": "manager"},
        },
        "group": {
            "external_id": {"source": "objectGUID", "transform": "guid"},
            "name": {"source": ["sAMAccountName", "cn"]},
            "description": {"source": "description"},
            "member_refs": {"source": "member", "transform": "all"},
        },
    },
}


DEFAULT_MAPPINGS["scim"] = SCIM_MAPPING  # pushed by identity providers (dirhook/scim)
DEFAULT_MAPPINGS["entra"] = ENTRA_MAPPING  # Microsoft Graph (dirhook/providers/entra.py)
DEFAULT_MAPPINGS["google"] = GOOGLE_MAPPING  # Admin SDK Directory API (dirhook/providers/google.py)


# Binary by definition: kept as "base64:…" even when the bytes happen to be valid UTF-8
# (an objectGUID is, about once in 50,000), so that a stored record normalizes again to
# the same values (see _guid).
BINARY_ATTRIBUTES = frozenset(
    a.lower()
    for a in (
        "objectGUID",
        "objectSid",
        "sIDHistory",
        "mS-DS-ConsistencyGuid",
        "msExchMailboxGuid",
        "jpegPhoto",
        "thumbnailPhoto",
        "userCertificate",
        "userSMIMECertificate",
    )
)


def _binary_text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "base64:" + base64.b64encode(value).decode("ascii")
    return str(value)


def _texts(name_lower: str, values: list[Any]) -> list[str]:
    """An attribute's values as text (str values, as in stored records, go through as they are)."""
    if name_lower in BINARY_ATTRIBUTES:
        return [_binary_text(v) for v in values]
    return [v if v.__class__ is str else _text(v) for v in values]


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(value).decode("ascii")
    return str(value)


def _first(values: list[Any]) -> str | None:
    return _text(values[0]) if values else None


def _guid(values: list[Any]) -> str | None:
    if not values:
        return None
    v = values[0]
    if isinstance(v, str) and v.startswith("base64:"):  # a stored source record keeps binary this way
        v = base64.b64decode(v[len("base64:") :])
    if isinstance(v, bytes) and len(v) == 16:
        return str(uuid.UUID(bytes_le=v))  # AD stores GUIDs little-endian
    return _text(v).strip("{}").lower()


def _ad_enabled(values: list[Any]) -> bool:
    # userAccountControl bit 0x2 is ACCOUNTDISABLE.
    if not values:
        return True
    return not (int(_text(values[0])) & 0x2)


def _emails(values: list[Any]) -> list[dict[str, Any]]:
    return [{"value": _text(v), "primary": i == 0, "type": "work"} for i, v in enumerate(values)]


TRANSFORMS: dict[str, Callable[[list[Any]], Any]] = {
    "first": _first,
    "all": lambda values: [_text(v) for v in values],
    "join": lambda values: ", ".join(_text(v) for v in values) if values else None,
    "lower": lambda values: (_first(values) or "").lower() if values else None,
    "emails": _emails,
    "guid": _guid,
    "ad_enabled": _ad_enabled,
    "boolean": lambda values: (_first(values) or "").strip().lower() in ("true", "1", "yes") if values else None,
}


# Fields dirhook computes itself: a mapping cannot write them.
READ_ONLY_FIELDS = frozenset(
    {
        "id",
        "object",
        "directory_id",
        "organization_id",
        "groups",
        "roles",
        "role",
        "manager_id",
        "version",
        "updated_at",
        "raw_attributes",
        "custom_attributes",
        "members",
    }
)


def validate_mapping(mapping: Mapping[str, Any], kind: str) -> None:
    fields = USER_FIELDS if kind == "user" else GROUP_FIELDS
    for target, spec in mapping.items():
        if target in READ_ONLY_FIELDS:
            raise MappingError(
                f"{kind} field {target!r} is read-only: dirhook computes it "
                "(map the manager's reference to manager_ref)"
                if target == "manager_id"
                else f"{kind} field {target!r} is read-only: dirhook computes it"
            )
        if target.startswith("custom_attributes.") and not target.split(".", 1)[1]:
            raise MappingError("custom_attributes.<name> needs a name")
        if target not in fields and not target.startswith("custom_attributes."):
            raise MappingError(
                f"{kind} mapping target {target!r} is not a field (expected one of "
                f"{', '.join(fields)} or custom_attributes.<name>)"
            )
        if not isinstance(spec, Mapping) or "source" not in spec:
            raise MappingError(f"{kind} mapping for {target!r} needs a 'source'")
        sources = [spec["source"]] if isinstance(spec["source"], str) else spec["source"]
        for source in sources:
            if isinstance(source, str) and is_secret(source):
                raise MappingError(
                    f"{kind} mapping for {target!r}: {source!r} holds credentials; dirhook never reads it"
                )
        transform = spec.get("transform", "first")
        if transform not in TRANSFORMS:
            raise MappingError(
                f"unknown transform {transform!r} for {target!r} (known: {', '.join(sorted(TRANSFORMS))})"
            )
    if "external_id" not in mapping:
        raise MappingError(f"{kind} mapping must map external_id")


def effective_mapping(flavour: str, overrides: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The flavour's defaults with a directory's per-kind overrides laid on top."""
    if flavour not in DEFAULT_MAPPINGS:
        raise MappingError(f"unknown directory flavour {flavour!r}")
    result = copy.deepcopy(DEFAULT_MAPPINGS[flavour])
    for kind in ("user", "group"):
        for target, spec in ((overrides or {}).get(kind) or {}).items():
            if spec is None:
                result[kind].pop(target, None)
            else:
                result[kind][target] = dict(spec)
        validate_mapping(result[kind], kind)
    return result


def source_attributes(mapping: Mapping[str, Any]) -> set[str]:
    """Every source attribute a mapping reads."""
    out: set[str] = set()
    for spec in mapping.values():
        src = spec["source"]
        out.update([src] if isinstance(src, str) else src)
    return out


def cap_raw_attributes(raw: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """Keep raw_attributes under ``max_bytes`` of JSON: the largest attributes go first, and
    ``_truncated`` names them, so an oversized photo or certificate never bloats every event."""
    if len(dumps_bytes(raw)) <= max_bytes:  # nearly always: one encoding, not one per attribute
        return raw
    sizes = {k: len(dumps_bytes(v)) + len(k.encode()) + 4 for k, v in raw.items()}
    kept = dict(raw)
    dropped: list[str] = []
    budget = max_bytes - 64  # room for the _truncated list itself
    for name in sorted(sizes, key=lambda k: (-sizes[k], k)):
        if sum(sizes[k] for k in kept) <= budget:
            break
        kept.pop(name)
        dropped.append(name)
    kept["_truncated"] = sorted(dropped)
    return kept


def reference_key(value: str | None) -> str | None:
    """How a source's reference (an LDAP DN) is stored and matched (``dirhook.dn.dn_key``)."""
    return dn_key(value) if value else None


# A stored source record (kept for re-normalization after a mapping change) stays under this:
# a directory's photos and certificate chains must not make every row megabytes. A bound for
# safety rather than a tuning knob; raw_attributes_max_bytes is what receivers see.
SOURCE_RECORD_MAX_BYTES = 256 * 1024


def source_record(record: SourceRecord, max_bytes: int = SOURCE_RECORD_MAX_BYTES) -> dict[str, Any]:
    """The record as stored for a later re-normalization: text values, credentials left out
    (``dirhook.secret_attributes``), the largest attributes dropped past ``max_bytes`` (named
    in ``_truncated``). Normalizing it gives what normalizing the source's own record gives."""
    out = {name: _texts(name.lower(), values) for name, values in record.items() if not is_secret(name)}
    return cap_raw_attributes(out, max_bytes)


def _lower_keys(record: SourceRecord) -> dict[str, tuple[str, list[Any]]]:
    # Credentials are not even visible to a mapping: whatever it names, it cannot read them.
    return {k.lower(): (k, v) for k, v in record.items() if not is_secret(k)}


def _apply(mapping: Mapping[str, Any], record: SourceRecord) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Returns (mapped fields, custom attributes, raw attributes)."""
    lowered = _lower_keys(record)
    used: set[str] = set()
    fields: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for target, spec in mapping.items():
        sources = spec["source"]
        values: list[Any] = []
        for src in [sources] if isinstance(sources, str) else sources:
            used.add(src.lower())
            if not values and src.lower() in lowered:
                values = lowered[src.lower()][1]
        value = TRANSFORMS[spec.get("transform", "first")](values)
        if target.startswith("custom_attributes."):
            if value is not None:
                custom[target.split(".", 1)[1]] = value
        elif value is not None:
            fields[target] = value
    raw = {
        name: _texts(low, values)
        for low, (name, values) in sorted(lowered.items())
        if low not in used and low not in OPERATIONAL_ATTRIBUTES
    }
    return fields, custom, raw


def normalize_user(mapping: Mapping[str, Any], record: SourceRecord, source_ref: str | None = None) -> NormalizedUser:
    fields, custom, raw = _apply(mapping, record)
    if not fields.get("external_id"):
        raise MappingError(f"user {source_ref or ''} has no value for external_id")
    fields["emails"] = [Email(**e) for e in fields.get("emails", [])]
    return NormalizedUser(**fields, custom_attributes=custom, raw_attributes=raw, source_ref=source_ref)


def normalize_group(mapping: Mapping[str, Any], record: SourceRecord, source_ref: str | None = None) -> NormalizedGroup:
    fields, _custom, raw = _apply(mapping, record)
    if not fields.get("external_id"):
        raise MappingError(f"group {source_ref or ''} has no value for external_id")
    fields.setdefault("name", fields["external_id"])
    return NormalizedGroup(**fields, raw_attributes=raw, source_ref=source_ref)


def requested_attributes(mapping: Mapping[str, Any], extra: Iterable[str] = ()) -> list[str]:
    """Attributes to ask the server for: every user attribute (``*``, for raw_attributes)
    plus the operational ones the mapping needs, which ``*`` leaves out."""
    return sorted({"*", *source_attributes(mapping), *extra})
