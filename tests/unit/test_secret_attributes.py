"""Security (issue 14, finding 9): credential-bearing directory attributes never reach a
stored record, ``raw_attributes``, a custom mapping or an event; stored records are bounded."""

from __future__ import annotations

import pytest

from dirhook.errors import MappingError
from dirhook.normalize import (
    SOURCE_RECORD_MAX_BYTES,
    effective_mapping,
    normalize_group,
    normalize_user,
    source_record,
)
from dirhook.secret_attributes import DENY_LISTS, is_secret

# Every listed attribute, a family's members spelled out (Windows LAPS's schema).
LAPS = (
    "msLAPS-Password",
    "msLAPS-EncryptedPassword",
    "msLAPS-EncryptedPasswordHistory",
    "msLAPS-EncryptedDSRMPassword",
)
ATTRIBUTES = sorted(
    {(flavour, a) for flavour, names in DENY_LISTS.items() for a in names if not a.endswith("*")}
    | {("active_directory", a) for a in LAPS}
)
MAPPINGS = {f: effective_mapping(f if f in ("openldap", "active_directory") else "openldap", None) for f in DENY_LISTS}


def base_record() -> dict[str, list[bytes]]:
    return {
        "entryUUID": [b"u-1"],
        "objectGUID": [b"0123456789abcdef"],
        "uid": [b"ada"],
        "sAMAccountName": [b"ada"],
        "cn": [b"Ada"],
        "employeeNumber": [b"7"],
    }


@pytest.mark.parametrize(("flavour", "attribute"), ATTRIBUTES, ids=[f"{f}-{a}" for f, a in ATTRIBUTES])
def test_a_credential_attribute_goes_nowhere(flavour, attribute):
    mapping = MAPPINGS[flavour]
    secret = b"S3cr3t-" + attribute.encode()
    # As servers send them: any case, and with attribute options (RFC 4512 2.5).
    for name in (attribute, attribute.upper(), attribute.lower(), f"{attribute};binary"):
        record = {**base_record(), name: [secret]}
        assert is_secret(name)
        stored = source_record(record)
        assert name not in stored and "employeeNumber" in stored
        user = normalize_user(mapping["user"], record)
        group = normalize_group(mapping["group"], record)
        for out in (user.model_dump_json(), group.model_dump_json(), repr(stored)):
            assert "S3cr3t" not in out, (name, out)
    # Not even an explicit mapping reads it.
    with pytest.raises(MappingError, match="holds credentials"):
        effective_mapping("openldap", {"user": {"custom_attributes.leak": {"source": attribute}}})
    with pytest.raises(MappingError, match="holds credentials"):
        effective_mapping("active_directory", {"user": {"title": {"source": ["title", attribute]}}})


@pytest.mark.parametrize(
    "name", ["mail", "passwordPolicySubentry", "pwdLastSet", "msDS-UserPasswordExpiryTimeComputed"]
)
def test_ordinary_attributes_are_not_taken_for_credentials(name):
    assert not is_secret(name)


def test_a_stored_record_is_bounded_and_says_what_it_dropped():
    photo = b"\xff\xd8" + b"x" * (SOURCE_RECORD_MAX_BYTES + 10)
    record = {**base_record(), "jpegPhoto": [photo], "title": [b"Countess"]}
    stored = source_record(record)
    assert "jpegPhoto" not in stored and stored["_truncated"] == ["jpegPhoto"]
    assert stored["title"] == ["Countess"] and stored["uid"] == ["ada"]
    small = source_record({**base_record(), "jpegPhoto": [b"\xff\xd8small"]})
    assert "_truncated" not in small and "jpegPhoto" in small
    # What was kept normalizes as the source did, for everything the mapping reads.
    mapping = effective_mapping("openldap", None)["user"]
    assert normalize_user(mapping, stored).username == normalize_user(mapping, record).username == "ada"
