"""Push notification rules of Google Workspace directories (dirhook/providers/google_push.py)."""

from __future__ import annotations

from dirhook.config import Settings
from dirhook.providers.google_push import CHANNEL_KINDS, due_for_renewal, notification_address, notified


def test_a_users_watch_notification_names_its_user():
    body = {"kind": "admin#directory#user", "id": "1034", "etag": '"x"', "primaryEmail": "a@example.com"}
    assert notified("users.update", body) == [("user", "1034")]
    assert notified("users.delete", {"kind": "admin#directory#user"}) == []  # no id: nothing to read


def test_an_admin_activity_names_each_group_once_by_its_lowercased_address():
    body = {
        "kind": "admin#reports#activity",
        "events": [
            {
                "name": "ADD_GROUP_MEMBER",
                "parameters": [
                    {"name": "USER_EMAIL", "value": "a@x.com"},
                    {"name": "GROUP_EMAIL", "value": "Team@X.com"},
                ],
            },
            {"name": "REMOVE_GROUP_MEMBER", "parameters": [{"name": "GROUP_EMAIL", "value": "team@x.com"}]},
            {"name": "CHANGE_GROUP_NAME", "parameters": [{"name": "GROUP_EMAIL", "value": "other@x.com"}]},
            {"name": "CREATE_USER", "parameters": [{"name": "USER_EMAIL", "value": "b@x.com"}]},
            "not an event",
        ],
    }
    assert notified("activities.admin", body) == [("group", "team@x.com"), ("group", "other@x.com")]
    assert notified("activities.admin", {"events": None}) == []


def test_channels_are_renewed_in_the_last_quarter_of_their_life():
    lifetime = 21600
    assert not due_for_renewal(1000 + lifetime, 1000, lifetime)
    assert not due_for_renewal(1000 + lifetime / 4 + 1, 1000, lifetime)
    assert due_for_renewal(1000 + lifetime / 4 - 1, 1000, lifetime)
    assert due_for_renewal(900, 1000, lifetime)  # already ended


def test_every_user_event_and_the_admin_activities_get_a_channel():
    assert CHANNEL_KINDS == (
        "users.add",
        "users.delete",
        "users.makeAdmin",
        "users.undelete",
        "users.update",
        "activities.admin",
    )


def test_push_needs_a_public_https_address():
    assert Settings(public_url=None).google_push_url is None
    assert Settings(public_url="http://dirhook.example.com").google_push_url is None  # Google refuses http
    url = Settings(public_url=" https://dirhook.example.com/ ").google_push_url
    assert url == "https://dirhook.example.com"
    assert notification_address(url, "dir_1") == "https://dirhook.example.com/google/notifications/dir_1"


def test_notifications_are_forgotten_by_the_ids_read_so_a_late_commit_is_not_skipped():
    """On PostgreSQL a notification can commit after one with a higher id: forgetting what a
    pass read must not take it along."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    from dirhook.db.schema import Base, Directory, GoogleNotification, Organization
    from dirhook.providers.google_push_state import PushState

    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    with sessions.begin() as s:
        s.add(Organization(id="org_1", name="o"))
        s.add(Directory(id="dir_1", organization_id="org_1", name="d", provider="google"))
        s.add(GoogleNotification(id=7, directory_id="dir_1", kind="user", object_key="u7"))
    state = PushState(sessions, "dir_1")
    read = state.pending(100)
    assert read == [(7, "user", "u7")]
    with sessions.begin() as s:  # committed after the pass read, with a lower id
        s.add(GoogleNotification(id=5, directory_id="dir_1", kind="group", object_key="team@example.com"))
    state.forget([row_id for row_id, _kind, _key in read])  # the next pass, once that one committed
    assert state.pending(100) == [(5, "group", "team@example.com")]
