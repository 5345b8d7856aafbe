import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from dirhook.api.schemas import Health
from dirhook.db.engine import schema_revisions

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz(request: Request):
    """Liveness and dependencies: 200 when the database answers, with Temporal's state beside it."""

    def ping() -> tuple[str, str]:
        try:
            with request.app.state.sessions() as s:
                s.execute(text("SELECT 1"))
                current, head = schema_revisions(s.get_bind())
        except Exception as exc:  # report, don't raise: this is the health endpoint
            return f"error: {type(exc).__name__}", "unknown"
        # The API checked at start; a later deploy may have moved the schema on (or back).
        return "ok", "ok" if current == head else f"at revision {current}, this code needs {head}"

    db, schema = await asyncio.to_thread(ping)  # a locked database must not hold the event loop
    try:
        client = await request.app.state.temporal.get()
        await client.service_client.check_health()
        temporal = "ok"
    except Exception as exc:
        temporal = f"unreachable: {type(exc).__name__}"
    status = "ok" if db == "ok" and schema == "ok" and temporal == "ok" else "degraded"
    body = Health(status=status, database=db, temporal=temporal, database_schema=schema)
    return JSONResponse(body.model_dump(), status_code=200 if db == "ok" and schema == "ok" else 503)
