"""SCIM resources as the sync engine reads them: flat source records ``{attribute: [values]}``
(pure functions, unit-tested without a server).

The SCIM ``id`` we assign is the object's ``external_id`` and its ``source_ref``: group
members and managers point at it, as LDAP's point at DNs. The IdP's own ``externalId``
is kept among ``raw_attributes`` (it is optional, and Entra lets admins remap it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

SIMPLE_USER_ATTRIBUTES = (
    "userName",
    "externalId",
    "displayName",
    "nickName",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
    "profileUrl",
)
ENTERPRISE_ATTRIBUTES = ("employeeNumber", "costCenter", "organization", "division", "department")

SCIM_MAPPING: dict[str, dict[str, dict[str, Any]]] = {
    "user": {
        "external_id": {"source": "id"},
        "username": {"source": "userName"},
        "emails": {"source": "emails", "transform": "emails"},
        "given_name": {"source": "name.givenName"},
        "family_name": {"source": "name.familyName"},
        "display_name": {"source": ["displayName", "name.formatted"]},
        "title": {"source": "title"},
        "department": {"source": "department"},
        "active": {"source": "active", "transform": "boolean"},
        "manager_ref": {"source": "manager"},
    },
    "group": {
        "external_id": {"source": "id"},
        "name": {"source": "displayName"},
        "member_refs": {"source": "members", "transform": "all"},
    },
}


def _put(record: dict[str, list[Any]], key: str, value: Any) -> None:
    if value is not None and value != "":
        record[key] = [value if isinstance(value, str) else str(value)]


def user_record(body: Mapping[str, Any]) -> dict[str, list[Any]]:
    """A stored SCIM User as a source record. The primary email comes first (the
    normalized model marks the first one primary); ``password`` is never read."""
    record: dict[str, list[Any]] = {"id": [body["id"]]}
    for name in SIMPLE_USER_ATTRIBUTES:
        _put(record, name, body.get(name))
    if "active" in body and body["active"] is not None:
        record["active"] = ["true" if body["active"] else "false"]
    for part, value in (body.get("name") or {}).items():
        _put(record, f"name.{part}", value)
    emails = sorted(body.get("emails") or [], key=lambda e: not e.get("primary"))
    if emails:
        record["emails"] = [e["value"] for e in emails if e.get("value")]
    phones = [p["value"] for p in body.get("phoneNumbers") or [] if p.get("value")]
    if phones:
        record["phoneNumbers"] = phones
    enterprise = body.get(ENTERPRISE) or {}
    for name in ENTERPRISE_ATTRIBUTES:
        _put(record, name, enterprise.get(name))
    manager = enterprise.get("manager") or {}
    _put(record, "manager", manager.get("value"))
    return record


def group_record(body: Mapping[str, Any]) -> dict[str, list[Any]]:
    record: dict[str, list[Any]] = {"id": [body["id"]]}
    _put(record, "displayName", body.get("displayName"))
    _put(record, "externalId", body.get("externalId"))
    record["members"] = [m["value"] for m in body.get("members") or [] if m.get("value")]
    return record
