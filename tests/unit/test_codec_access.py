"""Security (issue 14, finding 7): who may decode through the API's codec endpoint. An
``Origin`` header alone opens nothing; the embedded stack's UI uses the per-start secret of
its codec URL, from loopback only; the login cookie expires and is ``Secure`` over HTTPS;
the admin token is long enough to be unguessable."""

from __future__ import annotations

import httpx
import pytest
from google.protobuf import json_format
from pydantic import ValidationError
from temporalio.api.common.v1 import Payload, Payloads

from dirhook.api.app import create_app
from dirhook.api.routers.codec import SESSION_SECONDS, session_cookie, valid_session
from dirhook.config import Settings
from dirhook.db.engine import migrate
from dirhook.keyring import new_key

ADMIN = "admin-" + "a" * 32
URL_SECRET = "dhcodec_" + "s" * 40
UI = "http://127.0.0.1:8233"
BODY = json_format.MessageToJson(
    Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=b'{"mail":"ada@example.com"}')])
)
JSON = {"content-type": "application/json"}


@pytest.fixture
def app(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    return create_app(
        Settings(
            data_dir=tmp_path,
            database_url=url,
            admin_token=ADMIN,
            encryption_keys={"k1": new_key()},
            codec_cors_origins=[UI],
            codec_url_secret=URL_SECRET,
        )
    )


def client(app, host: str = "127.0.0.1", base: str = "http://127.0.0.1:8000") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(host, 50000)), base_url=base)


async def encrypted(api: httpx.AsyncClient) -> bytes:
    r = await api.post("/codec/encode", content=BODY, headers={**JSON, "authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 200 and b"ada@example.com" not in r.content
    return r.content


async def test_the_ui_origin_header_alone_decodes_nothing(app):
    async with client(app) as api:
        body = await encrypted(api)
        r = await api.post("/codec/decode", content=body, headers={**JSON, "origin": UI})
        assert r.status_code == 401
        assert r.headers["access-control-allow-origin"] == UI  # the UI can read why


async def test_the_codec_url_secret_decodes_from_loopback_only(app):
    async with client(app) as api:
        body = await encrypted(api)
        ok = await api.post(f"/codec/{URL_SECRET}/decode", content=body, headers={**JSON, "origin": UI})
        assert ok.status_code == 200 and b"ada@example.com" in b"".join(
            p.data for p in json_format.Parse(ok.text, Payloads()).payloads
        )
        assert (await api.post(f"/codec/{URL_SECRET}/encode", content=BODY, headers=JSON)).status_code == 200
        for wrong in ("dhcodec_guess", URL_SECRET[:-1], URL_SECRET + "x"):
            assert (await api.post(f"/codec/{wrong}/decode", content=body, headers=JSON)).status_code == 401
        preflight = await api.options(f"/codec/{URL_SECRET}/decode", headers={"origin": UI})
        assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == UI
    async with client(app, host="203.0.113.9") as remote:  # the API listening beyond loopback
        r = await remote.post(f"/codec/{URL_SECRET}/decode", content=body, headers=JSON)
        assert r.status_code == 401


async def test_without_a_configured_secret_no_url_opens_the_codec(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    app = create_app(
        Settings(data_dir=tmp_path, database_url=url, admin_token=ADMIN, encryption_keys={"k1": new_key()})
    )
    async with client(app) as api:
        body = await encrypted(api)
        for guess in ("None", "null", ""):
            r = await api.post(f"/codec/{guess}/decode", content=body, headers=JSON)
            assert r.status_code in (401, 404, 405), guess


async def test_the_login_cookie_expires_and_is_secure_over_https(app):
    async with client(app, base="https://dirhook.example") as api:
        body = await encrypted(api)
        login = await api.post(
            "/codec/login",
            content=f"token={ADMIN}".encode(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        cookie = login.headers["set-cookie"]
        assert login.status_code == 200 and "Secure" in cookie and "HttpOnly" in cookie
        assert f"Max-Age={SESSION_SECONDS}" in cookie and ADMIN not in cookie
        assert (await api.post("/codec/decode", content=body, headers=JSON)).status_code == 200
    async with client(app) as plain:  # over http (the embedded stack), Secure would lose the cookie
        login = await plain.post(
            "/codec/login",
            content=f"token={ADMIN}".encode(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert "Secure" not in login.headers["set-cookie"]
        stale = session_cookie(ADMIN, now=1_000_000)  # issued long ago: expired whatever the browser keeps
        plain.cookies.clear()
        r = await plain.post("/codec/decode", content=body, headers={**JSON, "cookie": f"dirhook_codec={stale}"})
        assert r.status_code == 401


def test_a_session_is_bound_to_its_expiry_and_the_admin_token():
    now = 2_000_000_000.0
    cookie = session_cookie(ADMIN, now=now)
    assert valid_session(cookie, ADMIN, now=now + SESSION_SECONDS - 1)
    assert not valid_session(cookie, ADMIN, now=now + SESSION_SECONDS + 1)
    assert not valid_session(cookie, "another-admin-token-" + "b" * 20, now=now)
    expires, _, mac = cookie.partition(".")
    assert not valid_session(f"{int(expires) + 86400}.{mac}", ADMIN, now=now)  # an extended expiry
    assert not valid_session("garbage", ADMIN, now=now)


@pytest.mark.parametrize("token", ["", "short", "x" * 31])
def test_an_empty_or_short_admin_token_refuses_to_start(token, monkeypatch):
    monkeypatch.setenv("DIRHOOK_ADMIN_TOKEN", token)
    with pytest.raises(ValidationError, match="DIRHOOK_ADMIN_TOKEN must be at least 32 characters"):
        Settings()
    monkeypatch.setenv("DIRHOOK_ADMIN_TOKEN", "x" * 32)
    assert Settings().resolved_admin_token == "x" * 32


def test_the_generated_admin_token_is_long_enough(tmp_path):
    assert len(Settings(data_dir=tmp_path).resolved_admin_token) >= 32
