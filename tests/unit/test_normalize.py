import uuid

import pytest

from dirhook.diff import content_hash, previous_attributes
from dirhook.normalize import (
    MappingError,
    effective_mapping,
    normalize_group,
    normalize_user,
    requested_attributes,
)

OPENLDAP = effective_mapping("openldap", None)
AD = effective_mapping("active_directory", None)


def test_inetorgperson_user_is_normalized_and_secrets_dropped():
    record = {
        "entryUUID": [b"8b0c-1"],
        "UID": [b"ada"],
        "mail": [b"ada@x.io", b"a@x.io"],
        "givenName": [b"Ada"],
        "sn": [b"Lovelace"],
        "cn": [b"Ada Lovelace"],
        "title": [b"Countess"],
        "userPassword": [b"{SSHA}x"],
        "employeeNumber": [b"7"],
        "modifyTimestamp": [b"20261129010101Z"],
        "manager": [b"uid=b,ou=p"],
    }
    user = normalize_user(OPENLDAP["user"], record, "uid=ada,ou=p")
    assert user.external_id == "8b0c-1" and user.username == "ada"  # attribute names match case-insensitively
    assert [e.value for e in user.emails] == ["ada@x.io", "a@x.io"] and user.emails[0].primary
    assert user.display_name == "Ada Lovelace"  # displayName absent: falls back to cn
    assert user.manager_ref == "uid=b,ou=p"
    assert user.raw_attributes == {"employeeNumber": ["7"]}  # no password, no bookkeeping, no mapped attribute


def test_active_directory_guid_and_disabled_flag():
    guid = uuid.uuid4()
    record = {"objectGUID": [guid.bytes_le], "sAMAccountName": [b"bob"], "userAccountControl": [b"514"]}
    user = normalize_user(AD["user"], record)
    assert user.external_id == str(guid)
    assert user.username == "bob" and user.active is False
    enabled = normalize_user(AD["user"], {**record, "userAccountControl": [b"512"]})
    assert enabled.active is True


@pytest.mark.parametrize("guid", [uuid.uuid4(), uuid.UUID(bytes_le=b"ab\x01cdefghijklmno")])  # the 2nd is valid UTF-8
def test_a_stored_record_normalizes_as_the_source_record_did(guid):
    from dirhook.normalize import source_record

    record = {
        "objectGUID": [guid.bytes_le],
        "sAMAccountName": [b"bob"],
        "userAccountControl": [b"514"],
        "jpegPhoto": [b"\xff\xd8"],
        "unicodePwd": [b"secret"],
        "info": ["already text"],
    }
    stored = source_record(record)
    assert "unicodePwd" not in stored and all(isinstance(v, str) for vs in stored.values() for v in vs)
    assert normalize_user(AD["user"], stored) == normalize_user(AD["user"], record)
    assert normalize_user(AD["user"], stored).external_id == str(guid)


def test_custom_attribute_mapping_and_overrides():
    mapping = effective_mapping(
        "openldap",
        {
            "user": {
                "custom_attributes.employee_id": {"source": "employeeNumber"},
                "department": {"source": "departmentNumber"},
                "title": None,
            }
        },
    )
    user = normalize_user(
        mapping["user"], {"entryUUID": [b"1"], "employeeNumber": [b"42"], "title": [b"T"], "departmentNumber": [b"R&D"]}
    )
    assert user.custom_attributes == {"employee_id": "42"}
    assert user.department == "R&D" and user.title is None and user.raw_attributes == {"title": ["T"]}
    assert "employeeNumber" in requested_attributes(mapping["user"])


def test_undecodable_values_are_kept_as_base64():
    user = normalize_user(OPENLDAP["user"], {"entryUUID": [b"1"], "jpegPhoto": [b"\xff\xd8\xff"]})
    assert user.raw_attributes["jpegPhoto"] == ["base64:/9j/"]


def test_groups_keep_member_references():
    g = normalize_group(OPENLDAP["group"], {"entryUUID": [b"g1"], "cn": [b"Admins"], "member": [b"uid=a", b"uid=b"]})
    assert g.name == "Admins" and g.member_refs == ["uid=a", "uid=b"]


@pytest.mark.parametrize(
    "overrides,needle",
    [
        ({"user": {"title": {"source": "title", "transform": "shout"}}}, "unknown transform"),
        ({"user": {"favourite_colour": {"source": "x"}}}, "favourite_colour"),
        ({"user": {"title": {"transform": "first"}}}, "needs a 'source'"),
        ({"user": {"external_id": None}}, "must map external_id"),
    ],
)
def test_invalid_mappings_are_refused(overrides, needle):
    with pytest.raises(MappingError, match=needle):
        effective_mapping("openldap", overrides)


def test_record_without_external_id_is_an_error():
    with pytest.raises(MappingError, match="external_id"):
        normalize_user(OPENLDAP["user"], {"uid": [b"x"]}, "uid=x")


def test_hash_is_order_independent_and_previous_attributes_lists_changed_fields():
    assert content_hash({"a": 1, "b": [1, 2]}) == content_hash({"b": [1, 2], "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})
    assert previous_attributes({"title": "A", "x": 1}, {"title": "B", "x": 1, "new": 3}) == {"new": None, "title": "A"}


def test_raw_attributes_are_capped_largest_first():
    from dirhook.normalize import cap_raw_attributes

    raw = {"jpegPhoto": ["x" * 5000], "certificate": ["y" * 3000], "l": ["Paris"], "postalCode": ["75001"]}
    assert cap_raw_attributes(raw, 100_000) == raw
    capped = cap_raw_attributes(raw, 4000)
    assert capped == {"certificate": ["y" * 3000], "l": ["Paris"], "postalCode": ["75001"], "_truncated": ["jpegPhoto"]}
    tiny = cap_raw_attributes(raw, 200)
    assert tiny["_truncated"] == ["certificate", "jpegPhoto"] and tiny["l"] == ["Paris"]
