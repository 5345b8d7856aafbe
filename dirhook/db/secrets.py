"""Secrets at rest: the columns holding LDAP bind passwords, Entra client secrets and
certificates, endpoint signing secrets (and custom headers) are sealed with AES-256-GCM
under the same keyring as Temporal payloads (``dirhook.codec``), so a database dump alone
reveals none of them.

A sealed value is ``dhenc1:<key id>:<base64(nonce | ciphertext)>``; the associated data is
the column's purpose and the key id, so a value copied into another column (an endpoint's
signing secret into a directory's bind password, to have it sent to an LDAP server) or
relabelled with another key id does not open. Writes seal with the active key; reads open
with whichever configured key sealed the value. Rotation: make a new key active, then
``dirhook secrets reencrypt`` rewrites every value under it; drop the old key afterwards.

The keyring travels with the engine (``make_engine(url, keyring)`` keeps it on the dialect,
where a column type can reach it) rather than in a global: two engines in one process may
hold different keys. An engine without a keyring writes values as they are (nothing to seal
with; `dirhook api` warns) and refuses to read a sealed one.

Hand-written rather than sqlalchemy-utils' ``StringEncryptedType``: that one has no key ids,
so no rotation, and does not bind the value to its column.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, Text, column, select, table, update
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from dirhook.errors import DirhookError
from dirhook.keyring import Keyring

PREFIX = "dhenc1:"
_BOX = "dirhook_secret_box"  # the dialect attribute holding an engine's SecretBox
log = logging.getLogger(__name__)

# (table, primary key, column): every sealed column, for reencrypt and the start-up check.
SEALED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("directories", "id", "secret"),
    ("endpoints", "id", "secret"),
    ("endpoints", "id", "headers"),
    ("endpoints", "id", "client_certificate"),
    ("endpoint_secrets", "id", "secret"),
)


class SecretsLocked(DirhookError):
    """A stored secret cannot be opened: no keyring here, or not the key that sealed it."""

    retryable = False


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


@dataclass(frozen=True)
class SecretBox:
    keyring: Keyring

    def seal(self, plain: str, purpose: str) -> str:
        key_id = self.keyring.active
        nonce = os.urandom(12)
        sealed = AESGCM(self.keyring.keys[key_id]).encrypt(nonce, plain.encode(), _aad(purpose, key_id))
        return f"{PREFIX}{key_id}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, stored: str, purpose: str) -> str:
        if not is_sealed(stored):
            return stored  # written before encryption was configured: `dirhook secrets reencrypt` seals it
        key_id, data = _parts(stored)
        key = self.keyring.keys.get(key_id)
        if key is None:
            raise SecretsLocked(f"a stored secret ({purpose}) is sealed with key {key_id!r}, which is not configured")
        try:
            return AESGCM(key).decrypt(data[:12], data[12:], _aad(purpose, key_id)).decode()
        except InvalidTag:
            raise SecretsLocked(f"a stored secret ({purpose}) does not open with key {key_id!r}") from None

    def needs_sealing(self, stored: str) -> bool:
        """Clear, or sealed with a key other than the active one."""
        return not is_sealed(stored) or _parts(stored)[0] != self.keyring.active


def _aad(purpose: str, key_id: str) -> bytes:
    return f"{purpose}|{key_id}".encode()


def _parts(stored: str) -> tuple[str, bytes]:
    key_id, _, encoded = stored[len(PREFIX) :].rpartition(":")  # a key id may hold ':'; base64 cannot
    try:
        return key_id, base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise SecretsLocked("a stored secret is damaged (not base64)") from None


def attach(engine: Engine, keyring: Keyring | None) -> None:
    setattr(engine.dialect, _BOX, SecretBox(keyring) if keyring else None)


def box_of(dialect: Dialect) -> SecretBox | None:
    box: SecretBox | None = getattr(dialect, _BOX, None)
    return box


class SealedText(TypeDecorator[str]):
    """A text column sealed at rest. ``purpose`` names the column in the associated data."""

    impl = Text
    cache_ok = True

    def __init__(self, purpose: str, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.purpose = purpose

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        box = box_of(dialect)
        if value is None or box is None or is_sealed(value):
            return value
        return box.seal(value, self.purpose)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None or not is_sealed(value):
            return value
        box = box_of(dialect)
        if box is None:
            raise SecretsLocked(
                f"a stored secret ({self.purpose}) is encrypted, and no keyring is configured here: "
                "set DIRHOOK_ENCRYPTION_KEYS as for the API and workers"
            )
        return box.open(value, self.purpose)


def _stored(engine: Engine) -> Iterator[tuple[str, str, str, Any, str]]:
    """(table, key column, column, key, stored value) of every non-null sealed column."""
    with engine.connect() as conn:
        for name, key, col in SEALED_COLUMNS:
            t = table(name, column(key), column(col, Text))
            for row_key, value in conn.execute(select(t.c[key], t.c[col]).where(t.c[col].is_not(None))):
                yield name, key, col, row_key, value


def reencrypt(engine: Engine, keyring: Keyring, only_clear: bool = False) -> dict[str, int]:
    """Seal every clear value, and (unless ``only_clear``) reseal every value sealed with
    another key, under the active key. Returns how many values of each table were
    rewritten. Idempotent; a value changed meanwhile by the API is left as the API wrote it."""
    box = SecretBox(keyring)
    rewritten = {name: 0 for name, _k, _c in SEALED_COLUMNS}
    pending = [
        (n, k, c, rk, v)
        for n, k, c, rk, v in _stored(engine)
        if (not is_sealed(v) if only_clear else box.needs_sealing(v))
    ]
    with engine.begin() as conn:
        for name, key, col, row_key, value in pending:
            purpose = f"{name}.{col}"
            t = table(name, column(key), column(col, Text))
            fresh = box.seal(box.open(value, purpose), purpose)
            conn.execute(update(t).where(t.c[key] == row_key, t.c[col] == value).values({col: fresh}))
            rewritten[name] += 1
    return rewritten


def check_readable(engine: Engine) -> int:
    """Refuse to serve secrets that cannot be opened (a key dropped too early, no keyring):
    every pass and delivery would fail otherwise. Returns how many values are still clear."""
    box = box_of(engine.dialect)
    clear = 0
    for name, _key, col, _row, value in _stored(engine):
        if not is_sealed(value):
            clear += 1
        elif box is None:
            raise SecretsLocked(
                f"the database holds encrypted secrets ({name}.{col}) and no keyring is configured: "
                "set DIRHOOK_ENCRYPTION_KEYS"
            )
        else:
            box.open(value, f"{name}.{col}")
    return clear
