"""The Temporal codec endpoint (``/codec/encode``, ``/codec/decode``): lets the Temporal UI
and ``temporal`` CLI show the decrypted payloads of dirhook's workflows to an operator
allowed to see them. Protocol: temporalio samples-go ``codec-server/protocol.md``
(Payloads as protobuf JSON; only the last path segment matters).

Who may decode: the admin token (``Authorization: Bearer``: scripts, the CLI, a UI set to
pass an access token), or a browser holding the session cookie of ``/codec/login`` (a UI
set to include cross-origin credentials), or — the embedded stack only, where the UI has
no login and everything listens on loopback — the configured UI origin itself. An
organization's API key may not: payloads of every organization pass through here.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payloads

from dirhook.codec import EncryptionCodec, UndecryptablePayload, load_keyring
from dirhook.config import Settings

router = APIRouter(prefix="/codec", tags=["temporal codec"])

COOKIE = "dirhook_codec"
MAX_BODY = 8 * 1024 * 1024


def _session_value(admin_token: str) -> str:
    # Derived, not the token itself: the cookie opens the codec and nothing else.
    return hmac.new(admin_token.encode(), b"dirhook codec session", hashlib.sha256).hexdigest()


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


def _authorized(request: Request) -> bool:
    admin = request.app.state.admin_token
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer ") and hmac.compare_digest(auth[7:].strip().encode(), admin.encode()):
        return True
    cookie = request.cookies.get(COOKIE, "")
    if cookie and hmac.compare_digest(cookie.encode(), _session_value(admin).encode()):
        return True
    settings = request.app.state.settings
    return settings.codec_trust_local_ui and request.headers.get("origin") in request.app.state.codec_origins


async def _apply(request: Request, encode: bool) -> Response:
    cors = _cors_headers(request)
    if not _authorized(request):
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
        payloads = json_format.Parse(body, Payloads())
    except (json_format.ParseError, DecodeError, UnicodeDecodeError) as exc:
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


@router.post("/encode")
async def encode(request: Request) -> Response:
    """Encrypt a protobuf-JSON `Payloads` with the active key."""
    return await _apply(request, encode=True)


@router.post("/decode")
async def decode(request: Request) -> Response:
    """Decrypt a protobuf-JSON `Payloads` (payloads that are not encrypted pass through)."""
    return await _apply(request, encode=False)


@router.options("/encode", include_in_schema=False)
@router.options("/decode", include_in_schema=False)
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
    response.set_cookie(COOKIE, _session_value(admin), httponly=True, samesite="lax", path="/codec", max_age=12 * 3600)
    return response


def setup(app: FastAPI, settings: Settings) -> None:
    keyring = load_keyring(settings)
    app.state.codec = EncryptionCodec(keyring) if keyring else None
    app.state.codec_origins = set(settings.codec_cors_origins)
