"""The fast SearchResultEntry reader decodes what ldap3 decodes, and leaves the rest to it."""

import pytest
from ldap3.protocol.rfc4511 import (
    LDAPDN,
    AttributeDescription,
    AttributeValue,
    Control,
    Controls,
    LDAPMessage,
    MessageID,
    PartialAttribute,
    PartialAttributeList,
    ProtocolOp,
    SearchResultEntry,
    Vals,
)
from ldap3.utils.asn1 import decode_message_fast, encode

from dirhook.providers.ldap.wire import decode_search_entry


def _message(message_id: int, dn: str, attributes: dict[str, list[bytes]], control: bool = False) -> bytes:
    entry = SearchResultEntry()
    entry["object"] = LDAPDN(dn)
    partial = PartialAttributeList()
    for n, (name, values) in enumerate(attributes.items()):
        attribute = PartialAttribute()
        attribute["type"] = AttributeDescription(name)
        vals = Vals()
        for m, value in enumerate(values):
            vals.setComponentByPosition(m, AttributeValue(value))
        attribute["vals"] = vals
        partial.setComponentByPosition(n, attribute)
    entry["attributes"] = partial
    op = ProtocolOp()
    op["searchResEntry"] = entry
    message = LDAPMessage()
    message["messageID"] = MessageID(message_id)
    message["protocolOp"] = op
    if control:
        controls = Controls()
        c = Control()
        c["controlType"] = "1.3.6.1.4.1.4203.1.9.1.2"
        c["criticality"] = False
        controls.setComponentByPosition(0, c)
        message["controls"] = controls
    return encode(message)


def _ldap3_reading(raw: bytes) -> dict:
    from ldap3.operation.search import search_result_entry_response_to_dict_fast

    decoded = decode_message_fast(raw)
    return search_result_entry_response_to_dict_fast(decoded["payload"], None, None, False)


@pytest.mark.parametrize(
    "attributes",
    [
        {"uid": [b"ada"], "cn": [b"Ada Lovelace"], "mail": [b"ada@example.com", b"a.l@example.com"]},
        {"description": [b"x" * 200]},  # long-form length (one octet)
        {"jpegPhoto": [bytes(range(256)) * 300], "cn": [b"\xc3\xa9milie"]},  # two-octet length, binary, UTF-8
        {"objectClass": [b"top", b"inetOrgPerson"], "empty": []},
        {},
    ],
)
def test_entries_decode_as_ldap3_decodes_them(attributes):
    raw = _message(7, "uid=ada,ou=People,dc=example,dc=org", attributes)
    entry = decode_search_entry(raw, 7)
    expected = _ldap3_reading(raw)
    assert entry["type"] == "searchResEntry"
    assert entry["dn"] == expected["dn"] and entry["raw_dn"] == expected["raw_dn"]
    # ldap3 gives None for an attribute sent without values; the fast reader an empty list.
    assert entry["raw_attributes"] == {k: v or [] for k, v in expected["raw_attributes"].items()}
    assert all(isinstance(v, bytes) for values in entry["raw_attributes"].values() for v in values)


def test_what_it_does_not_read_is_left_to_ldap3():
    raw = _message(7, "uid=ada,dc=example,dc=org", {"uid": [b"ada"]})
    assert decode_search_entry(raw, 8) is None  # another request's answer
    assert decode_search_entry(_message(7, "uid=ada,dc=example,dc=org", {"uid": [b"ada"]}, control=True), 7) is None
    assert decode_search_entry(raw[:-3], 7) is None  # truncated
    assert decode_search_entry(b"\x30\x80" + raw[2:], 7) is None  # indefinite length
    done = bytes.fromhex("300c02010765070a010004000400")  # a searchResDone
    assert decode_search_entry(done, 7) is None
    assert decode_message_fast(done)["protocolOp"] == 5  # (it is one)
