"""Encrypted Temporal payloads: AES-256-GCM with key IDs, so keys can rotate.

Every payload dirhook's clients and workers send to Temporal (workflow and activity
inputs and results, signals, summaries, failure messages) is encrypted before it leaves
the process: Temporal's database holds no personal data. The active key encrypts; every
configured key decrypts, found by the ``encryption-key-id`` each payload carries. To
rotate: add a new key, make it active, keep the old one until the histories encrypted
with it are gone (the namespace's retention).

With a keyring configured, a payload that is *not* encrypted is refused: only a holder of
a key can write a payload a worker will act on, so someone who reaches Temporal (its
frontend, its UI, its CLI) cannot start a pass, forge an activity result or feed a
workflow data of their own. `DIRHOOK_ACCEPT_UNENCRYPTED_PAYLOADS` lets workers read
histories written before encryption was turned on, until those have finished.

Shaped like temporalio's samples-python ``encryption`` sample; the key ID is also the
AES-GCM associated data, so a payload relabelled with another key ID fails to decrypt.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

from dirhook.config import Settings
from dirhook.keyring import Keyring, load_keyring

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"


class UndecryptablePayload(ValueError):
    pass


class EncryptionCodec(PayloadCodec):
    def __init__(self, keyring: Keyring, accept_unencrypted: bool = False):
        self.keyring = keyring
        self.accept_unencrypted = accept_unencrypted
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keyring.keys.items()}

    async def encode(self, payloads: Iterable[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Iterable[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self.keyring.active
        nonce = os.urandom(12)
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), key_id.encode())
        return Payload(metadata={"encoding": ENCODING, KEY_ID: key_id.encode()}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            if self.accept_unencrypted:
                return payload  # written before encryption was turned on
            raise UndecryptablePayload(
                "payload is not encrypted, and this process has encryption keys: it was not written "
                "by dirhook (set DIRHOOK_ACCEPT_UNENCRYPTED_PAYLOADS=true only to finish histories "
                "started before encryption was turned on)"
            )
        key_id = payload.metadata.get(KEY_ID, b"").decode()
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UndecryptablePayload(f"payload encrypted with key {key_id!r}, which is not configured here")
        try:
            plain = cipher.decrypt(payload.data[:12], payload.data[12:], key_id.encode())
        except InvalidTag:
            raise UndecryptablePayload(f"payload does not decrypt with key {key_id!r}") from None
        return Payload.FromString(plain)


def data_converter(settings: Settings, keyring: Keyring | None = None) -> DataConverter:
    """Temporal's default converter, plus encryption when keys are configured. Failure
    messages and stack traces move into an (encrypted) payload too: an error can quote
    the data it choked on."""
    keyring = keyring or load_keyring(settings)
    if keyring is None:
        return DataConverter.default
    return dataclasses.replace(
        DataConverter.default,
        payload_codec=EncryptionCodec(keyring, accept_unencrypted=settings.accept_unencrypted_payloads),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
