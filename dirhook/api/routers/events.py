import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import select

from dirhook.api.deps import SessionDep
from dirhook.api.schemas import ObjectPage, Page
from dirhook.db.schema import EventRow
from dirhook.services.directories import get_directory
from dirhook.services.scope import scoped

router = APIRouter(prefix="/v1/events", tags=["events"])
CURSOR = re.compile(r"[0-9]{1,18}")


@router.get("", response_model=ObjectPage)
def list_events(
    session: SessionDep,
    directory_id: str | None = None,
    organization_id: str | None = None,
    after: Annotated[
        str | None,
        # The pattern is published; the route itself refuses anything else with its own message.
        Query(description="next_cursor of the previous page", json_schema_extra={"pattern": f"^{CURSOR.pattern}$"}),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    type: Annotated[str | None, Query(description="only this event type")] = None,
):
    """Events oldest first, exactly as receivers get them. Follow by passing `next_cursor` back as `after`."""
    # Any: SQLAlchemy types each .where() as a new Select, which a reassignment cannot hold.
    q: Any = select(EventRow.pk, EventRow.body).order_by(EventRow.pk).limit(limit + 1)
    if directory_id:
        q = q.where(EventRow.directory_id == get_directory(session, directory_id).id)
    q = scoped(session, q, EventRow.organization_id, organization_id)
    if type:
        q = q.where(EventRow.type == type)
    if after is not None:
        if not CURSOR.fullmatch(after):  # ASCII digits, within a 64-bit row ID
            raise HTTPException(422, "after: not a cursor returned by this API")
        q = q.where(EventRow.pk > int(after))
    rows = session.execute(q).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(
        data=[json.loads(body) for _pk, body in rows], next_cursor=str(rows[-1][0]) if rows else after, has_more=more
    )
