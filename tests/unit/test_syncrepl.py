"""RFC 4533 control values: what we send is what the RFC's ASN.1 says; what OpenLDAP sent
(bytes captured from slapd 2.5) decodes."""

from pyasn1.codec.ber import decoder

from dirhook.providers.ldap import common_base
from dirhook.providers.ldap.syncrepl_codec import (
    REFRESH_AND_PERSIST,
    REFRESH_ONLY,
    SYNC_REQUEST_OID,
    _SyncRequestValue,
    decode_done,
    decode_info,
    decode_state,
)

# A syncIdSet intermediate response after one delete (slapd 2.5, syncprov with a sessionlog).
SYNC_ID_SET = (
    b"\xa3}\x04drid=000,csn=20261129044427.915828Z#000000#000#000000,delcsn=20261129044427.933685Z"
    b"#000000#000#000000\x01\x01\xff1\x12\x04\x10M\xc0<X\x7f\xfb\x10A\x8e\x1f\x0b\xe0\xd6\x85\x1c\xa9"
)


def test_the_request_control_encodes_mode_and_cookie():
    from dirhook.providers.ldap.syncrepl_codec import sync_request_control

    oid, critical, value = sync_request_control(REFRESH_ONLY, "rid=000,csn=1")
    decoded, rest = decoder.decode(value, asn1Spec=_SyncRequestValue())
    assert (oid, critical, rest) == (SYNC_REQUEST_OID, True, b"")
    assert int(decoded["mode"]) == 1 and bytes(decoded["cookie"]) == b"rid=000,csn=1"
    _oid, _c, value = sync_request_control(REFRESH_AND_PERSIST)
    decoded, _ = decoder.decode(value, asn1Spec=_SyncRequestValue())
    assert int(decoded["mode"]) == 3 and not decoded["cookie"].isValue


def test_a_sync_id_set_names_the_deleted_entries():
    info = decode_info(SYNC_ID_SET)
    assert info.deleted == ["4dc03c58-7ffb-1041-8e1f-0be0d6851ca9"] and info.present == []
    assert info.cookie.startswith("rid=000,csn=20261129044427.915828Z")


def test_state_and_done_values():
    state = decode_state(b"0\x15\n\x01\x02\x04\x10" + bytes(range(16)))
    assert (state.state, state.entry_uuid, state.cookie) == ("modify", "00010203-0405-0607-0809-0a0b0c0d0e0f", None)
    assert decode_done(b"0\x0b\x04\x06rid=00\x01\x01\xff") == ("rid=00", True)
    assert decode_done(b"0\x00") == (None, False)


def test_the_listener_watches_the_deepest_common_base():
    assert (
        common_base("ou=people,ou=acme,dc=example,dc=com", "OU=Groups,ou=ACME,dc=example,dc=com")
        == "ou=acme,dc=example,dc=com"
    )
    assert common_base("ou=people,dc=x", "ou=people,dc=x") == "ou=people,dc=x"
