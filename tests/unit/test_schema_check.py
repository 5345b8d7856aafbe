"""Security and operability (issue 14, finding 11): the API refuses an unmigrated database
with what to run, instead of answering 500 on every route while /healthz says ok."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from dirhook.api.app import create_app
from dirhook.config import Settings
from dirhook.db.engine import SchemaBehind, migrate

TOKEN = "t" * 32


def test_the_api_refuses_a_database_without_the_schema_and_serves_it_once_migrated(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    settings = Settings(data_dir=tmp_path, database_url=url, admin_token=TOKEN)
    with pytest.raises(SchemaBehind, match="dirhook migrate"):
        create_app(settings)
    migrate(url)
    create_app(settings)  # now it starts


def test_dirhook_api_says_what_to_run_and_exits(tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "DIRHOOK_DATA_DIR": str(tmp_path),
        "DIRHOOK_ADMIN_TOKEN": TOKEN,
        "DIRHOOK_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite'}",
        "DIRHOOK_LOG_FORMAT": "text",
    }
    done = subprocess.run(
        [sys.executable, "-m", "dirhook.cli", "api", "--port", "1"], env=env, timeout=60, capture_output=True, text=True
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "has no dirhook schema" in done.stderr and "dirhook migrate" in done.stderr, done.stderr


async def test_healthz_reports_a_schema_the_code_does_not_match(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    app = create_app(Settings(data_dir=tmp_path, database_url=url, admin_token=TOKEN, temporal_address="127.0.0.1:1"))
    with app.state.sessions.begin() as s:  # as if another deploy had moved the schema on
        s.connection().exec_driver_sql("UPDATE alembic_version SET version_num = 'from_the_future'")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dirhook") as api:
        r = await api.get("/healthz")
    assert r.status_code == 503
    assert r.json()["database_schema"].startswith("at revision from_the_future") and r.json()["status"] == "degraded"
