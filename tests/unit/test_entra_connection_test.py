"""A connection test of an Entra directory tries the token request once: a person waits for
the answer, and azure-identity's own retry policy would keep them waiting about 6 s for an
unreachable host before saying so (a sync pass keeps that policy)."""

from __future__ import annotations

import azure.identity.aio

from dirhook.config import Settings
from dirhook.db.engine import make_engine, make_sessionmaker
from dirhook.db.schema import Directory
from dirhook.services.source_probe import probe


def test_an_unreachable_entra_host_is_reported_after_one_try(monkeypatch, tmp_path):
    made: list[dict] = []
    real = azure.identity.aio.ClientSecretCredential

    class Recording(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            made.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(azure.identity.aio, "ClientSecretCredential", Recording)
    directory = Directory(
        id="dir_entra",
        organization_id="org_1",
        name="entra",
        provider="entra",
        config={
            "tenant_id": "0",
            "client_id": "0",
            "authority_host": "https://127.0.0.1:9",  # nothing listens there
            "graph_base_url": "https://127.0.0.1:9/v1.0",
        },
        secret="not-a-real-secret",
        attribute_mapping=None,
    )
    settings = Settings(data_dir=tmp_path, allow_private_entra_hosts=True)
    # An empty database: a probe reads nothing from it (the delta links are a pass's).
    answer = probe(directory, settings, make_sessionmaker(make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")))
    assert not answer.ok and answer.error_kind == "unavailable", answer
    assert "cannot reach Graph" in (answer.error or "") and "not-a-real-secret" not in (answer.error or "")
    assert [kwargs.get("retry_total") for kwargs in made] == [0]
