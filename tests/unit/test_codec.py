"""The payload codec: AES-GCM per payload, key IDs, rotation, refusal of bad keys."""

import pytest
from temporalio.api.common.v1 import Payload

from dirhook.codec import EncryptionCodec, UndecryptablePayload, data_converter
from dirhook.config import Settings
from dirhook.keyring import Keyring, KeyringError, new_key

PAYLOAD = Payload(metadata={"encoding": b"json/plain"}, data=b'{"mail":"ada@example.com"}')


async def test_encrypts_each_payload_differently_and_decrypts_back():
    codec = EncryptionCodec(Keyring.parse({"k1": new_key()}, None))
    a, b = await codec.encode([PAYLOAD, PAYLOAD])
    assert b"ada@example.com" not in a.SerializeToString() and a.data != b.data  # fresh nonce each time
    assert a.metadata["encryption-key-id"] == b"k1"
    assert await codec.decode([a, b]) == [PAYLOAD, PAYLOAD]


async def test_rotation_decrypts_old_payloads_and_encrypts_with_the_new_key():
    old, new = new_key(), new_key()
    before = await EncryptionCodec(Keyring.parse({"k1": old}, None)).encode([PAYLOAD])
    rotated = EncryptionCodec(Keyring.parse({"k1": old, "k2": new}, "k2"))
    assert await rotated.decode(before) == [PAYLOAD]
    (after,) = await rotated.encode([PAYLOAD])
    assert after.metadata["encryption-key-id"] == b"k2"
    with pytest.raises(UndecryptablePayload, match="k2"):
        await EncryptionCodec(Keyring.parse({"k1": old}, None)).decode([after])


async def test_a_relabelled_or_altered_payload_does_not_decrypt():
    k1, k2 = new_key(), new_key()
    codec = EncryptionCodec(Keyring.parse({"k1": k1, "k2": k2}, "k1"))
    (sealed,) = await codec.encode([PAYLOAD])
    sealed.metadata["encryption-key-id"] = b"k2"
    with pytest.raises(UndecryptablePayload):
        await codec.decode([sealed])
    (sealed,) = await codec.encode([PAYLOAD])
    sealed.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(UndecryptablePayload):
        await codec.decode([sealed])


async def test_unencrypted_payloads_are_refused_once_keys_are_configured():
    # Anyone who reaches Temporal can write a plain payload; only a key holder an encrypted one.
    codec = EncryptionCodec(Keyring.parse({"k1": new_key()}, None))
    with pytest.raises(UndecryptablePayload, match="not encrypted"):
        await codec.decode([PAYLOAD])


async def test_unencrypted_payloads_pass_only_when_legacy_histories_are_allowed():
    settings = Settings(encryption_keys={"k1": new_key()}, accept_unencrypted_payloads=True)
    codec = data_converter(settings).payload_codec
    assert codec is not None
    assert await codec.decode([PAYLOAD]) == [PAYLOAD]
    strict = data_converter(Settings(encryption_keys={"k1": new_key()})).payload_codec
    assert strict is not None
    with pytest.raises(UndecryptablePayload):
        await strict.decode([PAYLOAD])


@pytest.mark.parametrize(
    "keys,active,message",
    [
        ({}, None, "no encryption keys"),
        ({"k1": "not base64!"}, None, "not base64"),
        ({"k1": "c2hvcnQ="}, None, "AES-256 needs 32"),
        ({"k1": new_key(), "k2": new_key()}, None, "several"),
        ({"k1": new_key()}, "k9", "k9"),
    ],
)
def test_bad_keyrings_are_refused_with_the_reason(keys, active, message):
    with pytest.raises(KeyringError, match=message):
        Keyring.parse(keys, active)


def test_the_keyring_never_prints_its_keys():
    key = new_key()
    assert key not in repr(Keyring.parse({"k1": key}, None))
