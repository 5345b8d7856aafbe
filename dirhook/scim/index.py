"""What is stored beside a SCIM body so SQL can answer for it (pure functions): the keys
an IdP's lookups compare, the indexed values, and a group's members as rows."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from scim2_models import Group, Path, User, default_comparison_key

USER_NAME = Path[User[Any]]("userName").resolve()
GROUP_NAME = Path[Group]("displayName").resolve()
# Values indexed in scim_values, by the attribute path a filter names (lower case), with the
# binding that says how SCIM compares them (case-folded unless caseExact).
INDEXED_VALUES = {
    ("User", "emails.value"): Path[User[Any]]("emails.value").resolve(),
    ("User", "displayname"): Path[User[Any]]("displayName").resolve(),
}


def keys(resource_type: str, body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(match key, unique key): userName is unique per directory, displayName is not."""
    if resource_type == "User":
        key = default_comparison_key(USER_NAME, body["userName"]) if body.get("userName") else None
        return key, key
    name = body.get("displayName")
    return (default_comparison_key(GROUP_NAME, name) if name else None), None


def indexed_values(resource_type: str, body: dict[str, Any]) -> set[tuple[str, str]]:
    """(attribute, comparison key) pairs of the body's indexed values."""
    if resource_type != "User":
        return set()
    found: set[tuple[str, str]] = set()
    for email in body.get("emails") or []:
        if isinstance(email, dict) and isinstance(email.get("value"), str):
            found.add(("emails.value", comparison_key("User", "emails.value", email["value"])))
    if isinstance(body.get("displayName"), str):
        found.add(("displayname", comparison_key("User", "displayname", body["displayName"])))
    return {(a, v) for a, v in found if len(v) <= 512}


def comparison_key(resource_type: str, attribute: str, value: str) -> str:
    return default_comparison_key(INDEXED_VALUES[(resource_type, attribute)], value)


def member_rows(members: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """A group's members by id: what scim_members holds of each (value, type, display)."""
    rows: dict[str, dict[str, Any]] = {}
    for m in members or []:
        value = m.get("value") if isinstance(m, dict) else None
        if isinstance(value, str) and value:
            rows[value] = {"member_id": value, "member_type": m.get("type"), "display": m.get("display")}
    return rows


def member_body(row: Any) -> dict[str, Any]:
    """A stored member as the SCIM body shows it ($ref is added by the server from the type)."""
    member: dict[str, Any] = {"value": row.member_id}
    if row.member_type:
        member["type"] = row.member_type
        member["$ref"] = f"{row.member_type}s/{row.member_id}"
    if row.display:
        member["display"] = row.display
    return member


def version_of(body: dict[str, Any], members_revision: int = 0) -> str:
    """A weak ETag from the content (RFC 7644 §3.14): equal content, equal version. A
    group's members are not in its body: its membership revision stands for them."""
    content = {k: v for k, v in body.items() if k not in ("meta", "members")}
    if members_revision:
        content["\0members"] = members_revision
    return 'W/"' + hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:20] + '"'
