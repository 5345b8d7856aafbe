"""Schemathesis hooks for the OpenAPI run (tests/integration/test_openapi_contract.py),
loaded with SCHEMATHESIS_HOOKS=tests.support.schemathesis_hooks.

In the cases schemathesis means to be valid, what the schema cannot describe is replaced
by a value that is: every URL dirhook would connect to points at a closed port on
loopback (so a fuzzed endpoint or directory never reaches another host), and a client
certificate, whose validity is a signature, is left out, and an LDAP filter, whose grammar
no pattern describes, is a valid one (a role mapping's glob likewise; a Google service
account key, JSON with a PEM inside, is one made here). Cases meant to be invalid are
left alone.
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from schemathesis.core.parameters import ParameterLocation

LOOPBACK = {
    "url": os.environ.get("DIRHOOK_FUZZ_WEBHOOK_URL", "http://127.0.0.1:9/fuzz"),
    "ldap_url": "ldap://127.0.0.1:9",
    "https": "https://127.0.0.1:9",
}
_PEM = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    .decode()
)
SERVICE_ACCOUNT_KEY = json.dumps(
    {
        "type": "service_account",
        "private_key_id": "fuzz",
        "private_key": _PEM,
        "client_email": "fuzz@fuzz.iam.gserviceaccount.com",
        "client_id": "1",
    }
)


def _confine(path: str, body: dict[str, Any]) -> None:
    if path.startswith("/v1/endpoints") and isinstance(body.get("url"), str):
        body["url"] = LOOPBACK["url"]
    if path.startswith("/v1/endpoints"):
        body.pop("client_certificate", None)
    ldap = body.get("ldap")
    if isinstance(ldap, dict):
        if "url" in ldap:
            ldap["url"] = LOOPBACK["ldap_url"]
        for field in ("user_filter", "group_filter"):  # a grammar no pattern describes
            if field in ldap:
                ldap[field] = "(objectClass=*)"
    if path.endswith("/role-mappings") and isinstance(body.get("pattern"), str):
        body["pattern"] = "admins-*"  # a glob, or a DN suffix: grammars no pattern describes
    entra = body.get("entra")
    if isinstance(entra, dict):  # set when left out too: the defaults are Microsoft's own hosts
        for field in ("authority_host", "graph_base_url"):
            entra[field] = LOOPBACK["https"]
    google = body.get("google")
    if isinstance(google, dict):  # the same: the defaults are Google's own hosts
        for field in ("token_uri", "api_base_url"):
            google[field] = LOOPBACK["https"]
    if isinstance(body.get("service_account_key"), str):
        body["service_account_key"] = SERVICE_ACCOUNT_KEY


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    meta = getattr(case, "meta", None)
    if meta is not None and meta.is_negative_at(ParameterLocation.BODY):
        return case
    if isinstance(case.body, dict):
        _confine(case.operation.path, case.body)
    return case
