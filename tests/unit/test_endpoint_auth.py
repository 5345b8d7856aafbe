"""Issue 14, finding 14: what an endpoint's custom headers and client certificate may be."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta

import pytest

from dirhook.endpoint_auth import (
    MAX_HEADERS,
    check_client_certificate,
    client_context,
    decode_headers,
    encode_headers,
    header_names,
    validate_headers,
)
from tests.support.tls import TestPKI


def test_ordinary_api_key_headers_are_kept_as_given():
    headers = {"Authorization": "Bearer k-123", "X-Api-Key": "abc def", "x-tenant": "t1"}
    assert validate_headers(headers) == headers
    assert decode_headers(encode_headers(headers)) == headers
    assert header_names(encode_headers(headers)) == ["Authorization", "X-Api-Key", "x-tenant"]
    assert decode_headers(None) == {}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"webhook-signature": "v1,forged"}, "set by dirhook itself"),
        ({"Webhook-Anything": "x"}, "set by dirhook itself"),
        ({"Content-Type": "text/plain"}, "set by dirhook itself"),
        ({"Host": "elsewhere.example"}, "set by dirhook itself"),
        ({"Transfer-Encoding": "chunked"}, "set by dirhook itself"),
        ({"X-Key": "a\r\nX-Injected: 1"}, "visible ASCII"),
        ({"X-Key": "a\nb"}, "visible ASCII"),
        ({"X-Key": " padded"}, "visible ASCII"),
        ({"X-Key": "clé"}, "visible ASCII"),
        ({"X-Key": ""}, "1 to 4096"),
        ({"X-Key": "k" * 4097}, "1 to 4096"),
        ({"Bad Name": "x"}, "not an HTTP token"),
        ({"X:Key": "x"}, "not an HTTP token"),
        ({"X-Key": "a", "x-key": "b"}, "given twice"),
        ({f"X-{i}": "v" for i in range(MAX_HEADERS + 1)}, "at most 20"),
    ],
)
def test_headers_that_could_forge_or_smuggle_are_refused(headers, message):
    with pytest.raises(ValueError, match=message) as refused:
        validate_headers(headers)
    for value in headers.values():  # the message never quotes a value: it may be a key
        if len(value) > 3:
            assert value not in str(refused.value)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return TestPKI(tmp_path_factory.mktemp("pki"))


def test_a_client_certificate_with_its_key_is_accepted_and_described(pki):
    pem = pki.client_pem("dirhook-client")
    info = check_client_certificate(pem)
    assert info.subject == "CN=dirhook-client"
    assert info.not_valid_after > datetime.now(UTC)
    context = client_context(pem, str(pki.ca_bundle))
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED


def test_certificates_that_cannot_authenticate_are_refused(pki):
    pem = pki.client_pem("a")
    cert_only = pem[: pem.index("-----BEGIN PRIVATE KEY-----")]
    other = pki.client_pem("b")
    other_key = other[other.index("-----BEGIN PRIVATE KEY-----") :]
    with pytest.raises(ValueError, match="no PEM certificate"):
        check_client_certificate("not a certificate")
    with pytest.raises(ValueError, match="no private key"):
        check_client_certificate(cert_only)
    with pytest.raises(ValueError, match="does not belong"):
        check_client_certificate(cert_only + other_key)
    with pytest.raises(ValueError, match="encrypted"):
        check_client_certificate(
            cert_only + "-----BEGIN ENCRYPTED PRIVATE KEY-----\nx\n-----END ENCRYPTED PRIVATE KEY-----\n"
        )
    with pytest.raises(ValueError, match="expired"):
        check_client_certificate(pem, now=datetime.now(UTC) + timedelta(days=30))
