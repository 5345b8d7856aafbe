"""What a receiver may ask for besides a signature: custom request headers (an API key, a
bearer token) and a client certificate for mutual TLS. Both are write-only: sealed in the
database (``dirhook.db.secrets``), never returned (only header names, and the certificate's
subject and expiry), never logged.

Pure functions: validation, and the TLS context an endpoint's deliveries use.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

MAX_HEADERS = 20
MAX_HEADER_VALUE = 4096
MAX_CERTIFICATE_PEM = 64 * 1024
# RFC 9110 5.6.2: a header name is a token.
HEADER_NAME_PATTERN = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}$"
_TOKEN = re.compile(HEADER_NAME_PATTERN)
# Visible ASCII, spaces and tabs inside (RFC 9110 5.5, without obs-text): no CR or LF can
# smuggle a header or a request of its own.
HEADER_VALUE_PATTERN = r"^[\x21-\x7e]([\x20-\x7e\t]*[\x21-\x7e])?$"
_VALUE = re.compile(HEADER_VALUE_PATTERN)
# What dirhook itself sends, or what the HTTP connection owns: a custom header may not
# replace the signature, change how the body is framed, or redirect the request.
RESERVED_HEADERS = frozenset(
    {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "svix-id",
        "svix-timestamp",
        "svix-signature",
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "host",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "user-agent",
        "proxy-authorization",
        "proxy-connection",
    }
)


def validate_headers(headers: dict[str, str]) -> dict[str, str]:
    """The custom headers, checked; raises ValueError saying which one is wrong and why
    (never quoting a value: it is a secret)."""
    if len(headers) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} custom headers")
    seen: set[str] = set()
    for name, value in headers.items():
        low = name.lower()
        if not _TOKEN.match(name):
            raise ValueError(f"header name {name[:64]!r} is not an HTTP token (letters, digits, -, _ …)")
        if low in RESERVED_HEADERS or low.startswith("webhook-"):
            raise ValueError(f"header {name!r} is set by dirhook itself and cannot be replaced")
        if low in seen:
            raise ValueError(f"header {name!r} is given twice (names are case-insensitive)")
        seen.add(low)
        if not isinstance(value, str) or not value or len(value) > MAX_HEADER_VALUE:
            raise ValueError(f"header {name!r}: a value of 1 to {MAX_HEADER_VALUE} characters")
        if not _VALUE.match(value):
            raise ValueError(f"header {name!r}: the value must be visible ASCII (no line breaks, no edge spaces)")
    return dict(headers)


def encode_headers(headers: dict[str, str]) -> str:
    return json.dumps(headers, separators=(",", ":"))


def decode_headers(stored: str | None) -> dict[str, str]:
    return dict(json.loads(stored)) if stored else {}


def header_names(stored: str | None) -> list[str]:
    return sorted(decode_headers(stored))


@dataclass(frozen=True)
class CertificateInfo:
    """What the API shows of a client certificate."""

    subject: str
    not_valid_after: datetime


def check_client_certificate(pem: str, now: datetime | None = None) -> CertificateInfo:
    """A PEM text holding the certificate (then any intermediates) and its unencrypted private
    key. Raises ValueError with what is missing or wrong."""
    if len(pem) > MAX_CERTIFICATE_PEM:
        raise ValueError(f"over {MAX_CERTIFICATE_PEM} characters")
    data = pem.encode()
    if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data or b"Proc-Type: 4,ENCRYPTED" in data:
        raise ValueError("the private key is encrypted: give it without a passphrase (dirhook seals it at rest)")
    try:
        certificates = x509.load_pem_x509_certificates(b"".join(_CERT_BLOCK.findall(data)))
    except ValueError:
        raise ValueError("no PEM certificate found (expected -----BEGIN CERTIFICATE-----)") from None
    key = _private_key(data)
    leaf = certificates[0]
    if key.public_key().public_bytes(*_SPKI) != leaf.public_key().public_bytes(*_SPKI):
        raise ValueError("the private key does not belong to the first certificate")
    if leaf.not_valid_after_utc <= (now or datetime.now(UTC)):
        raise ValueError(f"the certificate expired on {leaf.not_valid_after_utc.isoformat()}")
    return CertificateInfo(leaf.subject.rfc4514_string(), leaf.not_valid_after_utc)


def describe_certificate(pem: str) -> CertificateInfo:
    """Subject and expiry of a stored (already checked) certificate, expired or not."""
    leaf = x509.load_pem_x509_certificates(b"".join(_CERT_BLOCK.findall(pem.encode())))[0]
    return CertificateInfo(leaf.subject.rfc4514_string(), leaf.not_valid_after_utc)


_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
_CERT_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\s*", re.S)
_KEY_BLOCK = re.compile(rb"-----BEGIN ((?:RSA |EC )?PRIVATE KEY)-----.+?-----END \1-----", re.S)


def _private_key(data: bytes) -> PrivateKeyTypes:
    block = _KEY_BLOCK.search(data)
    if block is None:
        raise ValueError("no private key found (expected -----BEGIN PRIVATE KEY----- after the certificate)")
    try:
        key = serialization.load_pem_private_key(block.group(0), password=None)
    except (ValueError, TypeError):
        raise ValueError("the private key cannot be read") from None
    return key


def trust_context(ca_bundle: str | None) -> ssl.SSLContext:
    """The system's trust store, plus ``ca_bundle`` (a private PKI's CA) when given."""
    context = ssl.create_default_context()
    if ca_bundle:
        context.load_verify_locations(ca_bundle)
    return context


def client_context(pem: str, ca_bundle: str | None) -> ssl.SSLContext:
    """``trust_context`` presenting the certificate. Python's ssl module loads a chain only
    from a file: it is written to a private temporary file (mode 0600, in a directory of its
    own) and removed as soon as it is loaded."""
    context = trust_context(ca_bundle)
    with tempfile.TemporaryDirectory(prefix="dirhook-cert-") as private:
        path = os.path.join(private, "client.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(pem)
        context.load_cert_chain(path)
    return context
