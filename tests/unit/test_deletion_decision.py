"""Security (issue 14, finding 1): held deletions are decided only through the validated
`decide_deletions` update, never by a signal that anyone reaching Temporal could send."""

# The SDK's own reading of a workflow class (what the worker registers), private but stable.
from temporalio.workflow import _Definition

from workflows.directory_sync import DirectorySyncWorkflow


def test_deletions_are_decided_by_the_validated_update_only():
    definition = _Definition.must_from_class(DirectorySyncWorkflow)
    assert "decide_deletions" in definition.updates
    assert definition.updates["decide_deletions"].validator is not None
    deciding = {name for name in definition.signals if name and "deletion" in name}
    assert deciding == set(), f"signals that decide deletions: {deciding}"
