"""Inputs and outputs that cross Temporal: what workflows hand activities and get back.

Plain dataclasses with defaults for every field added later, so a running workflow's
history (recorded with an older shape) still decodes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DispatchInput:
    endpoint_id: str
    # Epoch seconds of the next send the endpoint's rate limit allows, carried between batches.
    next_slot: float | None = None


@dataclass
class BatchResult:
    """One run of an endpoint's dispatch activity."""

    sent: int
    failed: int
    remaining: bool               # stopped at its time budget with more to send
    next_slot: float | None = None
    retry_in: float | None = None  # seconds until the next retry (or breaker probe) is due
    blocked: str | None = None     # why nothing more can go out now, for the Temporal UI
    health: str = "healthy"        # healthy | failing | circuit_open
    held: int = 0                  # deliveries the open breaker holds
