"""Running workflows must replay on the code that replaces theirs. Each history under
tests/histories/ was recorded from an end-to-end test (tests/support/histories.py); the
current workflow code replays every one, or this fails: a change that would break running
executions needs `workflow.patched` (README, "Changing workflows safely")."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from dirhook.codec import data_converter
from dirhook.config import Settings
from tests.support.histories import HISTORIES
from workers import ALL_WORKFLOWS

# The key the end-to-end tests encrypt their payloads with (tests/conftest.py).
TEST_KEYS = {"test-k1": "q3NxlMSd0UeCmbS1ZUs3KZp8yXo0f2pVwcPp3Ahb0nM="}
RECORDED = sorted(HISTORIES.glob("*.json"))


def test_the_recorded_histories_cover_every_long_running_kind():
    kinds = {path.stem.split("_", 1)[0] for path in RECORDED}
    assert {"sync", "dispatch", "ldap"} <= kinds, RECORDED


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
async def test_current_workflows_replay_the_recorded_history(path):
    # Some histories were recorded by time-skipping tests that run without keys: replay is
    # about the workflows' determinism, so they are read as they are.
    settings = Settings(
        encryption_keys=TEST_KEYS, accept_unencrypted_payloads=True, admin_token="replay-only-0123456789abcdefghijkl"
    )
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=data_converter(settings))
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
