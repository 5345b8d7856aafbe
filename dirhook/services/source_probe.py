"""Connection tests of a directory's source, from the API process.

They run here, not in a worker: the person creating a directory waits for the answer, and a
test changes nothing that a workflow would make durable. The probe is blocking I/O (ldap3,
or Graph on its own loop), so it runs in a thread, bounded by the source's own timeouts."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.orm import Session, sessionmaker

from dirhook.api.schemas import ConnectionTestOut
from dirhook.config import Settings
from dirhook.db.schema import Directory
from dirhook.errors import SourceAuthError, SourceConfigError, SourceError
from dirhook.providers.entra import EntraSource
from dirhook.providers.factory import build_source
from dirhook.services.errors import Conflict

log = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 5.0


def probe(d: Directory, settings: Settings, sessions: sessionmaker[Session]) -> ConnectionTestOut:
    """Connects, binds and counts; a source's refusal is the answer's ``error``."""
    if d.provider == "scim":
        raise Conflict(f"directory {d.id} is a SCIM directory: the IdP pushes to it, there is nothing to connect to")
    # A test waits at most PROBE_TIMEOUT_SECONDS per step, whatever the directory allows its
    # passes (up to 300 s): a person waits on it, and each one holds a thread of the API.
    limited = Directory(
        id=d.id,
        organization_id=d.organization_id,
        name=d.name,
        provider=d.provider,
        config={
            **d.config,
            "timeout_seconds": min(float(d.config.get("timeout_seconds", 10)), PROBE_TIMEOUT_SECONDS),
            # Google's client backs off up to a minute on a quota error: a person waits.
            **({"retries": 0} if d.provider == "google" else {}),
        },
        secret=d.secret,
        attribute_mapping=d.attribute_mapping,
    )
    source = build_source(limited, settings, sessions)
    if isinstance(source, EntraSource):
        source.token_retries = 0  # one try: a person waits, and the error is the answer
    try:
        source.connect()
        found = source.probe()  # type: ignore[attr-defined]  # LDAP, Entra and Google sources have one
    except SourceError as exc:
        kind = (
            "auth"
            if isinstance(exc, SourceAuthError)
            else "config"
            if isinstance(exc, SourceConfigError)
            else "unavailable"
        )
        return ConnectionTestOut(ok=False, error=str(exc), error_kind=kind)
    except Exception as exc:  # a client library refusing the settings themselves (an odd tenant ID…)
        log.info("connection test of %s failed: %s", d.id, type(exc).__name__, exc_info=True)
        return ConnectionTestOut(ok=False, error=f"{type(exc).__name__}: {exc}", error_kind="config")
    finally:
        source.close()
    return ConnectionTestOut(
        ok=True,
        users=found.users,
        groups=found.groups,
        at_least=found.capped,
        summary=found.summary(),
        notes=found.notes,
    )


async def require_working_source(
    d: Directory, settings: Settings, sessions: sessionmaker[Session]
) -> ConnectionTestOut:
    """The test at creation: a source that refuses is refused, with its error. 409, not 422:
    the request is valid; what it points at (a server, its state now) refuses it."""
    out = await asyncio.to_thread(probe, d, settings, sessions)
    if not out.ok:
        raise Conflict(f"connection test failed, nothing was created: {out.error} (skip the test with test=false)")
    return out
