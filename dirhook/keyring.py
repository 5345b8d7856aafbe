"""The keyring: AES-256 keys by id, one of them active. It seals Temporal payloads
(``dirhook.codec``) and the secrets stored in the database (``dirhook.db.secrets``).

Apart from the codec so that what reads the database need not import Temporal's SDK.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dirhook.config import Settings

DEV_KEYRING_FILE = "encryption_keys.json"


class KeyringError(ValueError):
    """The configured keys cannot be used (bad base64, wrong length, unknown active key)."""


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
