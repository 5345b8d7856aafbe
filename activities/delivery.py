"""Delivery activities: thin wrappers over the sending engine (dirhook/delivery/engine.py)."""

from __future__ import annotations

import asyncio

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client

from dirhook import temporal as t
from dirhook.config import Settings
from dirhook.contracts import BatchResult, DispatchInput
from dirhook.delivery.engine import Clock, DeliveryEngine
from dirhook.delivery.sender import WebhookSender
from dirhook.delivery.store import DeliveryStore


class DeliveryActivities:
    def __init__(self, sessions: sessionmaker[Session], settings: Settings, client: Client, sender: WebhookSender):
        self.settings = settings
        self.client = client
        self.store = DeliveryStore(sessions, settings)
        self.engine = DeliveryEngine(self.store, sender)

    @activity.defn(name="deliver_pending")
    async def deliver_pending(self, req: DispatchInput) -> BatchResult:
        """One bounded run of an endpoint's dispatcher: first attempts and due retries in one
        stream, or the circuit breaker's probe, or the FIFO chains."""
        return await self.engine.dispatch(
            req.endpoint_id, req.next_slot, heartbeat=activity.heartbeat, clock=Clock(activity.info().started_time)
        )

    @activity.defn(name="wake_dispatchers")
    async def wake_dispatchers(self, settle_seconds: float = 0.0) -> int:
        """Signal (or start) the dispatcher of every enabled endpoint with something to send:
        after a sync pass (everything), and from the delivery sweep (what has waited longer
        than ``settle_seconds``: a lost wake-up costs at most a sweep interval)."""
        endpoint_ids = await asyncio.to_thread(self.store.endpoints_with_work, settle_seconds)
        for endpoint_id in endpoint_ids:
            await t.wake_dispatcher(self.client, self.settings, endpoint_id)
        return len(endpoint_ids)
