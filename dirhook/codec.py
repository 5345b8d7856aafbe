"""Encrypted Temporal payloads: AES-256-GCM with key IDs, so keys can rotate.

Every payload dirhook's clients and workers send to Temporal (workflow and activity
inputs and results, signals, summaries, failure messages) is encrypted before it leaves
the process: Temporal's database holds no personal data. The active key encrypts; every
configured key decrypts, found by the ``encryption-key-id`` each payload carries. To
rotate: add a new key, make it active, keep the old one until the histories encrypted
with it are gone (the namespace's retention).

Shaped like temporalio's samples-python ``encryption`` sample; the key ID is also the
AES-GCM associated data, so a payload relabelled with another key ID fails to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

from dirhook.config import Settings

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
DEV_KEYRING_FILE = "encryption_keys.json"


class KeyringError(ValueError):
    """The configured keys cannot be used (bad base64, wrong length, unknown active key)."""


class UndecryptablePayload(ValueError):
    pass


@dataclass(frozen=True)
class Keyring:
    keys: dict[str, bytes]
    active: str

    @classmethod
    def parse(cls, keys: dict[str, str], active: str | None) -> Keyring:
        decoded: dict[str, bytes] = {}
        for key_id, value in keys.items():
            if not key_id or len(key_id) > 64:
                raise KeyringError(f"encryption key ID {key_id!r}: 1 to 64 characters")
            try:
                raw = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise KeyringError(f"encryption key {key_id!r} is not base64") from None
            if len(raw) != 32:
                raise KeyringError(f"encryption key {key_id!r} is {len(raw)} bytes; AES-256 needs 32")
            decoded[key_id] = raw
        if not decoded:
            raise KeyringError("no encryption keys")
        if active is None:
            if len(decoded) > 1:
                raise KeyringError("several encryption keys: set DIRHOOK_ENCRYPTION_KEY_ID to the one that encrypts")
            active = next(iter(decoded))
        if active not in decoded:
            raise KeyringError(f"DIRHOOK_ENCRYPTION_KEY_ID {active!r} is not one of the configured keys")
        return cls(decoded, active)

    def __repr__(self) -> str:  # never print key material
        return f"Keyring(key_ids={sorted(self.keys)}, active={self.active!r})"


def new_key() -> str:
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


def load_keyring(settings: Settings) -> Keyring | None:
    """The keys from the environment, else the embedded stack's file in the data directory,
    else None (payloads are not encrypted)."""
    if settings.encryption_keys:
        return Keyring.parse(
            {k: v.get_secret_value() for k, v in settings.encryption_keys.items()}, settings.encryption_key_id
        )
    path = settings.data_dir / DEV_KEYRING_FILE
    if path.exists():
        stored = json.loads(path.read_text())
        return Keyring.parse(stored["keys"], settings.encryption_key_id or stored.get("active"))
    return None


def ensure_dev_keyring(settings: Settings) -> Path | None:
    """`dirhook dev` encrypts too: a key is made once into the data directory (mode 0600),
    unless keys come from the environment."""
    if settings.encryption_keys:
        return None
    path = settings.ensure_data_dir() / DEV_KEYRING_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"active": "k1", "keys": {"k1": new_key()}}, f)
    return path


class EncryptionCodec(PayloadCodec):
    def __init__(self, keyring: Keyring):
        self.keyring = keyring
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
            return payload  # written before encryption was turned on
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
        payload_codec=EncryptionCodec(keyring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
