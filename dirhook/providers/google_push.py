"""Google Workspace push notifications, as pure rules: which channels a directory holds,
when one is renewed, and what a notification names (no Google library, no database).

Google sends a notification to the channel's address (developers.google.com/admin-sdk/
directory/v1/guides/push, and the Reports API's "Push notifications"): headers
``X-Goog-Channel-ID``, ``X-Goog-Channel-Token`` (the token dirhook gave, its proof),
``X-Goog-Resource-State`` (``sync`` once when the channel opens, then the event), and a
body: for users.watch the user resource (``id``, ``primaryEmail``…), for activities.watch
an activity whose events carry parameters such as ``GROUP_EMAIL``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# users.watch takes one event per channel: a directory holds one channel for each.
USER_EVENTS = ("add", "delete", "makeAdmin", "undelete", "update")
# …and one activities.watch channel on the admin application (group and member changes).
CHANNEL_KINDS = (*(f"users.{e}" for e in USER_EVENTS), "activities.admin")
NOTIFICATIONS_PATH = "/google/notifications/{directory_id}"


def notification_address(push_url: str, directory_id: str) -> str:
    return push_url.rstrip("/") + NOTIFICATIONS_PATH.format(directory_id=directory_id)


def due_for_renewal(expires_at_seconds: float, now: float, lifetime_seconds: float) -> bool:
    """A channel is replaced once less than a quarter of its lifetime is left: passes run
    at least that often (the schedule), so a channel never lapses between two of them."""
    return expires_at_seconds - now < lifetime_seconds / 4


def notified(kind: str, body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What a notification of a channel of ``kind`` names: ("user", id) or ("group", address)."""
    if kind.startswith("users."):
        uid = body.get("id")
        return [("user", str(uid))] if isinstance(uid, str | int) and str(uid) else []
    out: list[tuple[str, str]] = []
    for event in body.get("events") or []:
        if not isinstance(event, Mapping):
            continue
        for parameter in event.get("parameters") or []:
            if isinstance(parameter, Mapping) and parameter.get("name") == "GROUP_EMAIL" and parameter.get("value"):
                out.append(("group", str(parameter["value"]).lower()))
    return list(dict.fromkeys(out))
