"""Microsoft Graph objects as the sync engine reads them (pure functions, no msgraph import):
flat source records, and the default attribute mapping of an `entra` directory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

USER_SELECT = (
    "id",
    "userPrincipalName",
    "mail",
    "otherMails",
    "givenName",
    "surname",
    "displayName",
    "jobTitle",
    "department",
    "employeeId",
    "accountEnabled",
    "onPremisesExtensionAttributes",
)
GROUP_SELECT = ("id", "displayName", "description", "members")

ENTRA_MAPPING: dict[str, dict[str, dict[str, Any]]] = {
    "user": {
        "external_id": {"source": "id"},
        "username": {"source": "userPrincipalName"},
        "emails": {"source": "mails", "transform": "emails"},
        "given_name": {"source": "givenName"},
        "family_name": {"source": "surname"},
        "display_name": {"source": "displayName"},
        "title": {"source": "jobTitle"},
        "department": {"source": "department"},
        "active": {"source": "accountEnabled", "transform": "boolean"},
        "manager_ref": {"source": "manager"},
    },
    "group": {
        "external_id": {"source": "id"},
        "name": {"source": "displayName"},
        "description": {"source": "description"},
        "member_refs": {"source": "members", "transform": "all"},
    },
}


def user_record(user: Mapping[str, Any]) -> dict[str, list[Any]]:
    """`mails`: `mail` first (the primary), then `otherMails`. `onPremisesExtensionAttributes`
    flattens to `extensionAttribute1`… (Graph's own names)."""
    record: dict[str, list[Any]] = {}
    for key, value in user.items():
        if key.startswith("@") or value is None or key in ("otherMails", "manager", "onPremisesExtensionAttributes"):
            continue
        record[key] = ["true" if value is True else "false" if value is False else str(value)]
    mails = [m for m in [user.get("mail"), *(user.get("otherMails") or [])] if m]
    if mails:
        record["mails"] = list(dict.fromkeys(mails))
    if isinstance(user.get("manager"), dict) and user["manager"].get("id"):
        record["manager"] = [user["manager"]["id"]]
    for key, value in (user.get("onPremisesExtensionAttributes") or {}).items():
        if value is not None:
            record[key] = [str(value)]
    return record


def group_record(group: Mapping[str, Any], member_ids: list[str]) -> dict[str, list[Any]]:
    record: dict[str, list[Any]] = {"id": [group["id"]]}
    for key in ("displayName", "description", "mailNickname"):
        if group.get(key) is not None:
            record[key] = [str(group[key])]
    record["members"] = list(member_ids)
    return record


def member_changes(group: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(added, removed) member IDs of a group in a delta page (`members@delta`)."""
    added: list[str] = []
    removed: list[str] = []
    for member in group.get("members@delta") or []:
        (removed if "@removed" in member else added).append(member["id"])
    return added, removed
