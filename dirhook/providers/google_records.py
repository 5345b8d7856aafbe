"""Admin SDK Directory API objects as the sync engine reads them (pure functions, no Google
library import): flat source records, and the default attribute mapping of a `google`
directory.

A user resource nests what the other providers keep flat (``name.givenName``,
``organizations[].title``, ``customSchemas.Schema.field``); records flatten it under names
a mapping can point at: ``givenName``, ``title``, ``externalIds.organization``,
``customSchemas.Employment.costCenter``… (the README's Google section lists them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

GOOGLE_MAPPING: dict[str, dict[str, dict[str, Any]]] = {
    "user": {
        "external_id": {"source": "id"},
        "username": {"source": "primaryEmail"},
        "emails": {"source": "mails", "transform": "emails"},
        "given_name": {"source": "givenName"},
        "family_name": {"source": "familyName"},
        "display_name": {"source": ["displayName", "fullName"]},
        "title": {"source": "title"},
        "department": {"source": "department"},
        "active": {"source": "active", "transform": "boolean"},
        "manager_ref": {"source": "manager"},
        "custom_attributes.employee_id": {"source": "externalIds.organization"},
        "custom_attributes.org_unit_path": {"source": "orgUnitPath"},
    },
    "group": {
        "external_id": {"source": "id"},
        "name": {"source": "name"},
        "description": {"source": "description"},
        "member_refs": {"source": "members", "transform": "all"},
    },
}

# Left out of records: bookkeeping that changes without the person changing (a sign-in moves
# lastLoginTime; a membership change moves a group's directMembersCount), which would make
# every pass a user.updated or group.updated; and what a mapping must never read.
VOLATILE_USER_FIELDS = frozenset(
    {"kind", "etag", "lastLoginTime", "thumbnailPhotoEtag", "thumbnailPhotoUrl", "password", "hashFunction"}
)
VOLATILE_GROUP_FIELDS = frozenset({"kind", "etag", "directMembersCount"})


def _text(value: Any) -> str:
    return "true" if value is True else "false" if value is False else str(value)


def _custom_values(value: Any) -> list[str]:
    # A multi-valued custom field is a list of {"type": …, "value": …}.
    if isinstance(value, list):
        return [_text(v.get("value")) for v in value if isinstance(v, dict) and v.get("value") is not None]
    return [_text(value)]


def user_record(user: Mapping[str, Any], manager_id: str | None = None) -> dict[str, list[Any]]:
    """``active`` is false for suspended and archived accounts (neither can sign in); ``mails``
    is the primary address first, then the others; ``manager`` the manager's user id (Google
    names the manager by email in ``relations``: the source resolves it)."""
    record: dict[str, list[Any]] = {}
    for key, value in user.items():
        if key in VOLATILE_USER_FIELDS or value is None or isinstance(value, dict | list):
            continue
        record[key] = [_text(value)]
    name = user.get("name") or {}
    for key in ("givenName", "familyName", "fullName", "displayName"):
        if name.get(key):
            record[key] = [str(name[key])]
    record["active"] = [_text(not (user.get("suspended") or user.get("archived")))]
    mails = [user.get("primaryEmail")]
    emails = user.get("emails") or []
    mails += [e.get("address") for e in emails if isinstance(e, dict) and e.get("primary")]
    mails += [e.get("address") for e in emails if isinstance(e, dict) and not e.get("primary")]
    mails = list(dict.fromkeys(m for m in mails if m))
    if mails:
        record["mails"] = mails
    if user.get("aliases"):
        record["aliases"] = [str(a) for a in user["aliases"]]
    for external in user.get("externalIds") or []:
        kind = external.get("customType") if external.get("type") == "custom" else external.get("type")
        if kind and external.get("value") is not None:
            record.setdefault(f"externalIds.{kind}", []).append(str(external["value"]))
    organizations = [o for o in user.get("organizations") or [] if isinstance(o, dict)]
    primary = next((o for o in organizations if o.get("primary")), organizations[0] if organizations else None)
    for key in ("title", "department", "costCenter", "description", "location"):
        if primary and primary.get(key):
            record[key] = [str(primary[key])]
    for schema, fields in (user.get("customSchemas") or {}).items():
        for field_name, value in (fields or {}).items():
            if value is not None:
                record[f"customSchemas.{schema}.{field_name}"] = _custom_values(value)
    if manager_id:
        record["manager"] = [manager_id]
    return record


def manager_email(user: Mapping[str, Any]) -> str | None:
    """The manager's address in ``relations`` (type manager), lowercased."""
    for relation in user.get("relations") or []:
        if isinstance(relation, dict) and relation.get("type") == "manager" and relation.get("value"):
            return str(relation["value"]).lower()
    return None


def group_record(group: Mapping[str, Any], member_ids: list[str]) -> dict[str, list[Any]]:
    record: dict[str, list[Any]] = {}
    for key, value in group.items():
        if key in VOLATILE_GROUP_FIELDS or value is None or isinstance(value, dict | list):
            continue
        record[key] = [_text(value)]
    if group.get("aliases"):
        record["aliases"] = [str(a) for a in group["aliases"]]
    record["members"] = list(member_ids)
    return record


def member_ids(members: Sequence[Mapping[str, Any]]) -> tuple[list[str], int]:
    """Users and groups among a group's members (ids), and how many others were left out:
    ``CUSTOMER`` (everyone in the account, as one member) and addresses outside the account
    are not objects of the directory."""
    ids, other = [], 0
    for member in members:
        if member.get("type") in ("USER", "GROUP") and member.get("id"):
            ids.append(str(member["id"]))
        else:
            other += 1
    return ids, other


def in_org_units(user: Mapping[str, Any], org_units: Sequence[str]) -> bool:
    """The user is in one of the org units (sub-units included), or no scope is set."""
    if not org_units:
        return True
    path = str(user.get("orgUnitPath") or "/").rstrip("/") + "/"
    return any(ou == "/" or path.startswith(ou.rstrip("/") + "/") for ou in org_units)
