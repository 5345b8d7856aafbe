"""Security (issue 14, finding 4): a request body over the limit is refused with 413 before
anything parses it, authentication included; declared or streamed, and SCIM keeps its own."""

from __future__ import annotations

import httpx
import pytest

from dirhook.api.app import create_app
from dirhook.config import Settings
from dirhook.db.engine import migrate

LIMIT = 4096


@pytest.fixture
def api(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    settings = Settings(
        data_dir=tmp_path,
        database_url=url,
        admin_token="a" * 32,
        api_max_body_bytes=LIMIT,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings)), base_url="http://dirhook")


async def test_a_declared_body_over_the_limit_is_refused_before_authentication(api):
    async with api:
        r = await api.post(
            "/v1/directories", content=b"{" + b" " * LIMIT + b"}", headers={"content-type": "application/json"}
        )
    assert r.status_code == 413 and str(LIMIT) in r.json()["detail"]


async def test_a_streamed_body_is_counted_as_it_arrives(api):
    async def chunks():
        for _ in range(8):
            yield b" " * 1024

    async with api:
        r = await api.post("/v1/endpoints", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


async def test_a_body_within_the_limit_reaches_the_route(api):
    async with api:
        # No token: the route's authentication answers, so the body got through the limit.
        r = await api.post("/v1/directories", json={"name": "x" * 100})
    assert r.status_code == 401


async def test_scim_answers_with_its_own_limit_and_error_format(api):
    async with api:
        r = await api.post(
            "/scim/v2/dir_x/Users", content=b" " * (LIMIT * 2), headers={"content-type": "application/scim+json"}
        )
    # The SCIM gateway's own checks run (here: an unknown directory's token), not this limit.
    assert r.status_code == 401
