"""The Temporal codec endpoint (``/codec/encode``, ``/codec/decode``): lets the Temporal UI
and ``temporal`` CLI show the decrypted payloads of dirhook's workflows to an operator
allowed to see them. Protocol: temporalio samples-go ``codec-server/protocol.md``
(Payloads as protobuf JSON; only the last path segment matters).

Who may decode: the admin token (``Authorization: Bearer``: scripts, the CLI, a UI set to
pass an access token), or a browser holding the session cookie of ``/codec/login`` (a UI
set to include cross-origin credentials; it expires), or — the embedded stack only, where
the UI has no login — a loopback caller of ``/codec/<secret>/…``, the secret being made by
`dirhook dev` at each start and given to its UI alone (``--ui-codec-endpoint``). An
``Origin`` header proves nothing (any local process can send one): it only selects CORS
headers. An organization's API key may not decode: every organization's payloads pass here.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import time
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payloads

from dirhook.codec import EncryptionCodec, UndecryptablePayload
from dirhook.config import Settings
from dirhook.keyring import load_keyring

router = APIRouter(prefix="/codec", tags=["temporal codec"])

COOKIE = "dirhook_codec"
SESSION_SECONDS = 12 * 3600
MAX_BODY = 8 * 1024 * 1024


def _session_mac(admin_token: str, expires: int) -> str:
    return hmac.new(admin_token.encode(), f"dirhook codec session|{expires}".encode(), hashlib.sha256).hexdigest()


def session_cookie(admin_token: str, now: float | None = None) -> str:
    """``<expiry>.<mac>``: derived from the admin token, not the token itself (the cookie opens
    the codec and nothing else), and refused after its expiry whatever the browser keeps."""
    expires = int(now if now is not None else time.time()) + SESSION_SECONDS
    return f"{expires}.{_session_mac(admin_token, expires)}"


def valid_session(cookie: str, admin_token: str, now: float | None = None) -> bool:
    expires, _, mac = cookie.partition(".")
    if not expires.isdigit() or int(expires) < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(mac.encode(), _session_mac(admin_token, int(expires)).encode())


def _from_loopback(request: Request) -> bool:
    try:
        return request.client is not None and ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


def _cors_headers(request: Request) -> dict[str, str]:
    origin = request.headers.get("origin")
    if origin and origin in request.app.state.codec_origins:
        return {
            "access-control-allow-origin": origin,
            "access-control-allow-credentials": "true",
            "access-control-allow-methods": "POST",
            "vary": "Origin",
            "access-control-allow-headers": "content-type,x-namespace,authorization",
        }
    return {}


def _authorized(request: Request, url_secret: str | None) -> bool:
    admin = request.app.state.admin_token
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer ") and hmac.compare_digest(auth[7:].strip().encode(), admin.encode()):
        return True
    cookie = request.cookies.get(COOKIE, "")
    if cookie and valid_session(cookie, admin):
        return True
    expected = request.app.state.settings.codec_url_secret
    return (
        url_secret is not None
        and expected is not None
        and hmac.compare_digest(url_secret.encode(), expected.get_secret_value().encode())
        and _from_loopback(request)
    )


async def _apply(request: Request, encode: bool, url_secret: str | None = None) -> Response:
    cors = _cors_headers(request)
    if not _authorized(request, url_secret):
        return JSONResponse(
            {"detail": "decoding needs the admin token (or a /codec/login session)"},
            status_code=401,
            headers={**cors, "www-authenticate": "Bearer"},
        )
    codec: EncryptionCodec | None = request.app.state.codec
    body = await request.body()
    if len(body) > MAX_BODY:
        return JSONResponse({"detail": f"body over {MAX_BODY} bytes"}, status_code=413, headers=cors)
    try:
        # protobuf's parser reads `{"payloads": null}` as no payloads: the protocol says a list.
        if not isinstance(parsed := json.loads(body), dict) or not isinstance(parsed.get("payloads", []), list):
            raise json_format.ParseError('expected {"payloads": [...]}')
        if any(isinstance(p, dict) and "externalPayloads" in p for p in parsed.get("payloads", [])):
            raise json_format.ParseError("externalPayloads: dirhook never stores payloads elsewhere")
        payloads = json_format.Parse(body, Payloads())
    except (json_format.ParseError, DecodeError, ValueError) as exc:  # ValueError: json's, UTF-8's
        return JSONResponse(
            {"detail": f"not a Payloads message in protobuf JSON: {exc}"}, status_code=400, headers=cors
        )
    if codec is None:  # encryption off: payloads are what they are, as for the workers
        return Response(json_format.MessageToJson(payloads), media_type="application/json", headers=cors)
    try:
        out = await (codec.encode if encode else codec.decode)(payloads.payloads)
    except UndecryptablePayload as exc:
        return JSONResponse({"detail": str(exc)}, status_code=422, headers=cors)
    return Response(json_format.MessageToJson(Payloads(payloads=out)), media_type="application/json", headers=cors)


# Temporal's codec protocol: a protobuf-JSON `Payloads` in, the same shape out. The body is
# read raw (not by FastAPI), so the document states it here.
_PAYLOADS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "payloads": {
            "type": "array",
            "items": {
                "type": "object",
                # No externalPayloads: dirhook never writes payloads stored elsewhere.
                "additionalProperties": False,
                "properties": {
                    # protobuf's JSON reads null as the field left out
                    "metadata": {
                        "type": ["object", "null"],
                        "additionalProperties": {"type": "string", "format": "byte"},
                    },
                    "data": {"type": ["string", "null"], "format": "byte"},
                },
            },
        }
    },
}
_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
CODEC_OPENAPI: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": _PAYLOADS}}},
    "responses": {
        "200": {
            "description": "The payloads, encoded or decoded",
            "content": {"application/json": {"schema": _PAYLOADS}},
        },
        "400": {"description": "Not a protobuf-JSON Payloads message.", "content": _ERROR},
        "401": {"description": "Needs the admin token or a /codec/login session.", "content": _ERROR},
        "413": {"description": "The body is over 8 MiB.", "content": _ERROR},
        "422": {"description": "A payload does not decrypt with the configured keys.", "content": _ERROR},
    },
}


@router.post("/encode", openapi_extra=CODEC_OPENAPI)
async def encode(request: Request) -> Response:
    """Encrypt a protobuf-JSON `Payloads` with the active key."""
    return await _apply(request, encode=True)


@router.post("/decode", openapi_extra=CODEC_OPENAPI)
async def decode(request: Request) -> Response:
    """Decrypt a protobuf-JSON `Payloads` (payloads that are not encrypted pass through)."""
    return await _apply(request, encode=False)


# The embedded stack's UI calls these: the codec URL `dirhook dev` gives it ends in its secret.
@router.post("/{url_secret}/encode", include_in_schema=False)
async def encode_with_url_secret(url_secret: str, request: Request) -> Response:
    return await _apply(request, encode=True, url_secret=url_secret)


@router.post("/{url_secret}/decode", include_in_schema=False)
async def decode_with_url_secret(url_secret: str, request: Request) -> Response:
    return await _apply(request, encode=False, url_secret=url_secret)


@router.options("/encode", include_in_schema=False)
@router.options("/decode", include_in_schema=False)
@router.options("/{url_secret}/encode", include_in_schema=False)
@router.options("/{url_secret}/decode", include_in_schema=False)
async def preflight(request: Request) -> Response:
    return Response(status_code=204, headers=_cors_headers(request))


LOGIN_FORM = """<!doctype html><title>dirhook codec</title>
<form method="post"><p>Admin token, to let this browser decode dirhook's Temporal payloads:</p>
<input name="token" type="password" autofocus size="60"> <button>Sign in</button></form>"""


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
async def login_form() -> str:
    return LOGIN_FORM


@router.post("/login", include_in_schema=False)
async def login(request: Request) -> Response:
    # Parsed by hand: one urlencoded field does not justify python-multipart.
    token = (parse_qs((await request.body())[:4096].decode(errors="replace")).get("token") or [""])[0]
    admin = request.app.state.admin_token
    if not hmac.compare_digest(token.encode(), admin.encode()):
        return HTMLResponse("<p>Wrong token.</p>" + LOGIN_FORM, status_code=401)
    response = HTMLResponse("<p>This browser may now decode dirhook's payloads in the Temporal UI.</p>")
    response.set_cookie(
        COOKIE,
        session_cookie(admin),
        httponly=True,
        # Behind TLS (uvicorn's proxy headers give the scheme) the cookie never travels in clear.
        secure=request.url.scheme == "https",
        samesite="lax",
        path="/codec",
        max_age=SESSION_SECONDS,
    )
    return response


def setup(app: FastAPI, settings: Settings) -> None:
    keyring = load_keyring(settings)
    # The UI shows whatever a history holds: a payload someone wrote unencrypted is shown as
    # it is (the workers refuse to act on it; an operator should see what was sent).
    app.state.codec = EncryptionCodec(keyring, accept_unencrypted=True) if keyring else None
    app.state.codec_origins = set(settings.codec_cors_origins)
