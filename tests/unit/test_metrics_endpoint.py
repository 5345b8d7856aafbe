"""Security (issue 14, finding 5): /metrics can require a bearer token, and scrapes reuse the
database's counts for a while instead of scanning the tables each time."""

from __future__ import annotations

import httpx
import pytest

from dirhook.api.app import create_app
from dirhook.config import Settings
from dirhook.db.engine import make_engine, make_sessionmaker, migrate
from dirhook.metrics import DatabaseCollector

ADMIN = "a" * 32
METRICS = "m" * 24


@pytest.fixture
def url(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    return url


async def test_metrics_need_the_token_once_one_is_set(tmp_path, url):
    app = create_app(Settings(data_dir=tmp_path, database_url=url, admin_token=ADMIN, metrics_token=METRICS))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dirhook") as api:
        assert (await api.get("/metrics")).status_code == 401
        assert (await api.get("/metrics", headers={"authorization": "Bearer wrong"})).status_code == 401
        ok = await api.get("/metrics", headers={"authorization": f"Bearer {METRICS}"})
        assert ok.status_code == 200 and "dirhook_deliveries" in ok.text
        assert (await api.get("/metrics", headers={"authorization": f"Bearer {ADMIN}"})).status_code == 200


async def test_without_a_token_metrics_stay_open_as_before(tmp_path, url):
    app = create_app(Settings(data_dir=tmp_path, database_url=url, admin_token=ADMIN))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dirhook") as api:
        assert (await api.get("/metrics")).status_code == 200


def test_scrapes_within_the_cache_window_read_the_database_once(url, monkeypatch):
    sessions = make_sessionmaker(make_engine(url))
    reads = []
    cached = DatabaseCollector(sessions, cache_seconds=60)
    monkeypatch.setattr(cached, "_read", lambda real=cached._read: reads.append(1) or real())
    for _ in range(5):
        list(cached.collect())
    assert len(reads) == 1
    uncached = DatabaseCollector(sessions, cache_seconds=0)
    monkeypatch.setattr(uncached, "_read", lambda real=uncached._read: reads.append(1) or real())
    for _ in range(3):
        list(uncached.collect())
    assert len(reads) == 4
