"""Workflow histories recorded from the end-to-end tests, for the replay test
(tests/unit/test_replay.py): a change to a workflow that running executions could not
replay fails CI before it reaches them.

`DIRHOOK_RECORD_HISTORIES=1 scripts/test tests/test_one_writer.py …` writes them again into
tests/histories/ (review the diff and commit them with the change that needed it).
"""

from __future__ import annotations

import os
from pathlib import Path

HISTORIES = Path(__file__).resolve().parents[1] / "histories"


async def record(client, workflow_id: str, name: str) -> None:
    """Save the workflow's history as ``tests/histories/<name>.json`` when recording."""
    if not os.environ.get("DIRHOOK_RECORD_HISTORIES"):
        return
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    HISTORIES.mkdir(exist_ok=True)
    (HISTORIES / f"{name}.json").write_text(history.to_json())
