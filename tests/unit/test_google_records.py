"""Google's user and group resources as records, and a Google directory's settings and key."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from dirhook.normalize import effective_mapping, normalize_user
from dirhook.providers.google_config import GoogleConfig, parse_service_account_key
from dirhook.providers.google_records import group_record, manager_email, member_ids, user_record

USER = {
    "kind": "admin#directory#user",
    "etag": '"abc"',
    "id": "1034",
    "primaryEmail": "liz@example.com",
    "name": {"givenName": "Liz", "familyName": "Smith", "fullName": "Liz Smith"},
    "suspended": False,
    "archived": False,
    "orgUnitPath": "/Sales/EMEA",
    "lastLoginTime": "2026-12-01T09:00:00.000Z",
    "emails": [{"address": "liz.smith@example.com"}, {"address": "liz@example.com", "primary": True}],
    "aliases": ["ls@example.com"],
    "externalIds": [
        {"value": "E-42", "type": "organization"},
        {"value": "x9", "type": "custom", "customType": "badge"},
    ],
    "organizations": [
        {"title": "Intern", "primary": False},
        {"title": "Engineer", "department": "R&D", "primary": True},
    ],
    "relations": [{"value": "Boss@Example.com", "type": "manager"}],
    "customSchemas": {"Employment": {"costCenter": "42", "projects": [{"value": "a"}, {"value": "b"}]}},
}


def test_a_user_is_flattened_under_names_a_mapping_can_point_at():
    record = user_record(USER, manager_id="2001")
    assert record["mails"] == ["liz@example.com", "liz.smith@example.com"]  # the primary first, once
    assert record["givenName"] == ["Liz"] and record["fullName"] == ["Liz Smith"]
    assert record["title"] == ["Engineer"] and record["department"] == ["R&D"]  # the primary organization
    assert record["externalIds.organization"] == ["E-42"] and record["externalIds.badge"] == ["x9"]
    assert record["customSchemas.Employment.projects"] == ["a", "b"]
    assert record["aliases"] == ["ls@example.com"] and record["manager"] == ["2001"]
    assert record["active"] == ["true"]
    assert not {"etag", "kind", "lastLoginTime"} & set(record)  # would make every pass an update
    assert manager_email(USER) == "boss@example.com"


@pytest.mark.parametrize("flag", ["suspended", "archived"])
def test_suspended_and_archived_accounts_are_inactive(flag):
    user = normalize_user(effective_mapping("google", None)["user"], user_record({**USER, flag: True}), "1034")
    assert user.active is False


def test_the_default_mapping_and_a_custom_schema_field():
    overrides = {"user": {"custom_attributes.cost_center": {"source": "customSchemas.Employment.costCenter"}}}
    user = normalize_user(effective_mapping("google", overrides)["user"], user_record(USER), "1034")
    assert (user.external_id, user.username, user.display_name) == ("1034", "liz@example.com", "Liz Smith")
    assert [e.value for e in user.emails] == ["liz@example.com", "liz.smith@example.com"]
    assert user.custom_attributes == {"employee_id": "E-42", "org_unit_path": "/Sales/EMEA", "cost_center": "42"}


def test_group_members_keep_users_and_groups_only():
    members = [
        {"id": "1", "type": "USER"},
        {"id": "2", "type": "GROUP"},
        {"id": "C01", "type": "CUSTOMER"},
        {"email": "guest@elsewhere.example", "type": "USER"},  # outside the account: no id
    ]
    assert member_ids(members) == (["1", "2"], 2)
    record = group_record({"id": "9", "name": "team", "etag": '"x"', "directMembersCount": "2"}, ["1", "2"])
    assert record == {"id": ["9"], "name": ["team"], "members": ["1", "2"]}  # the count moves with members


def test_settings_refuse_what_could_reach_a_query():
    base = {"admin_email": "admin@example.com"}
    assert GoogleConfig.model_validate({**base, "org_units": ["/Sales/"]}).org_units == ["/Sales"]
    for bad in (
        {"org_units": ["Sales"]},
        {"org_units": ["/Sales' or '1"]},
        {"group_emails": ["x"]},
        {"admin_email": "nobody"},
        {"api_base_url": "http://admin.googleapis.com"},
    ):
        with pytest.raises(ValidationError):
            GoogleConfig.model_validate({**base, **bad})


def test_a_bad_key_is_refused_without_echoing_it():
    secret = "-----BEGIN PRIVATE KEY-----\nMIIsecretsecret\n-----END PRIVATE KEY-----\n"
    good = {"type": "service_account", "client_email": "a@b.iam.gserviceaccount.com", "private_key_id": "k"}
    assert parse_service_account_key(json.dumps({**good, "private_key": secret}))["private_key_id"] == "k"
    for bad in (
        "{",
        json.dumps({**good, "type": "authorized_user", "private_key": secret}),
        json.dumps({**good, "private_key": "MIIsecretsecret"}),
        json.dumps({"type": "service_account"}),
    ):
        with pytest.raises(ValueError) as caught:
            parse_service_account_key(bad)
        assert "MIIsecret" not in str(caught.value)
