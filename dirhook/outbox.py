"""Writing events: the outbox row and its deliveries go in the caller's transaction."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from dirhook.db.schema import Delivery, Directory, Endpoint, EventRow, table_of, utcnow
from dirhook.delivery.rules import DeliveryStatus
from dirhook.ids import new_id
from dirhook.jsonenc import Encoded, dumps_bytes
from dirhook.metrics import EVENTS_EMITTED
from dirhook.subscriptions import endpoint_wants


class Outbox:
    """Collects the events of one transaction; ``flush`` assigns sequences and fans out deliveries."""

    def __init__(self, session: Session, directory: Directory, max_payload_bytes: int = 512 * 1024):
        self.session = session
        self.directory = directory
        self.max_payload_bytes = max_payload_bytes
        self._pending: list[tuple[str, dict[str, Any] | Encoded, dict[str, Any] | None, str | None]] = []
        self.counts: dict[str, int] = {}
        self.endpoint_ids_touched: set[str] = set()

    def emit(
        self,
        type_: str,
        data: dict[str, Any] | Encoded,
        previous: dict[str, Any] | None = None,
        object_id: str | None = None,
    ) -> None:
        self._pending.append((type_, data, previous, object_id))
        self.counts[type_] = self.counts.get(type_, 0) + 1

    def flush(self) -> int:
        if not self._pending:
            return 0
        n = len(self._pending)
        # Reserve the sequence range with one UPDATE so concurrent writers (SCIM pushes)
        # serialize on the directory row instead of handing out the same numbers.
        self.session.execute(
            update(Directory).where(Directory.id == self.directory.id).values(last_sequence=Directory.last_sequence + n)
        )
        last = self.session.execute(
            select(Directory.last_sequence).where(Directory.id == self.directory.id)
        ).scalar_one()
        first = last - n + 1
        # Disabled endpoints get their deliveries too, held as "skipped" for a later recovery.
        endpoints = self.session.execute(
            select(
                Endpoint.id, Endpoint.event_types, Endpoint.directory_ids, Endpoint.enabled, Endpoint.max_payload_bytes
            ).where(Endpoint.organization_id == self.directory.organization_id)
        ).all()
        organization_id, directory_id = self.directory.organization_id, self.directory.id
        # One timestamp for the transaction's events: they become visible together.
        ts = utcnow()
        timestamp = ts.isoformat().replace("+00:00", "Z")
        rows: list[dict[str, Any]] = []
        sizes: list[int] = []
        for i, (type_, data, previous, object_id) in enumerate(self._pending):
            # The envelope of the event contract (dirhook.models.Event), built as a
            # dict: validating tens of thousands of them through the model cost more than
            # encoding them. ``data`` may hold already-encoded parts (jsonenc.Encoded).
            event_id = new_id("evt")
            envelope = {
                "id": event_id,
                "type": type_,
                "timestamp": timestamp,
                "organization_id": organization_id,
                "directory_id": directory_id,
                "sequence": first + i,
                "data": data,
            }
            if previous is not None:  # only *.updated events carry it
                envelope["previous_attributes"] = previous
            body = dumps_bytes(envelope)
            sizes.append(len(body))
            rows.append(
                {
                    "id": event_id,
                    "directory_id": directory_id,
                    "organization_id": organization_id,
                    "sequence": first + i,
                    "type": type_,
                    "object_id": object_id,
                    "created_at": ts,
                    "body": body.decode(),
                }
            )
        # Core bulk inserts, on the tables rather than the ORM classes: building ORM objects
        # (or going through the ORM's bulk path) for tens of thousands of events and
        # deliveries cost more than reading the directory (measured with bench/ldap_full_sync.py).
        self.session.execute(insert(table_of(EventRow)), rows)
        # Read the keys back in one query: INSERT … RETURNING with ordered rows runs row by
        # row on SQLite (measured: most of the outbox's time for a 2,000-event chunk).
        pk_of = dict(
            self.session.execute(
                select(EventRow.id, EventRow.pk).where(
                    EventRow.directory_id == self.directory.id, EventRow.sequence.between(first, last)
                )
            ).all()
        )
        pks = [pk_of[row["id"]] for row in rows]
        deliveries = []
        for row, pk, size in zip(rows, pks, sizes, strict=True):
            for endpoint_id, types, directory_ids, enabled, max_bytes in endpoints:
                if not endpoint_wants(types, directory_ids, row["type"], row["directory_id"]):
                    continue
                status, error = (
                    (DeliveryStatus.PENDING, None) if enabled else (DeliveryStatus.SKIPPED, "endpoint disabled")
                )
                limit = max_bytes or self.max_payload_bytes
                if size > limit:
                    status, error = (
                        DeliveryStatus.FAILED,
                        f"payload of {size} bytes exceeds this endpoint's limit of {limit} bytes",
                    )
                deliveries.append(
                    {
                        "endpoint_id": endpoint_id,
                        "event_pk": pk,
                        "event_id": row["id"],
                        "event_type": row["type"],
                        "directory_id": row["directory_id"],
                        "status": status,
                        "last_error": error,
                        "attempts": 0,
                        "created_at": ts,
                        "updated_at": ts,
                    }
                )
                if status == DeliveryStatus.PENDING:
                    self.endpoint_ids_touched.add(endpoint_id)
        if deliveries:
            self.session.execute(insert(table_of(Delivery)), deliveries)
        for type_, count in Counter(row["type"] for row in rows).items():
            EVENTS_EMITTED.labels(type_).inc(count)
        self._pending.clear()
        return n
