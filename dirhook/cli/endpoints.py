"""`dirhook endpoints …` and `dirhook events`: webhook endpoints, their deliveries, and the event stream."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import typer

from dirhook.cli.app import app
from dirhook.cli.common import console, new_table, request
from dirhook.contracts import EndpointHealth

endpoints_app = typer.Typer(help="Webhook endpoints and their deliveries.", no_args_is_help=True)
app.add_typer(endpoints_app, name="endpoints")

# Files, not arguments: an API key or a private key on a command line is in the shell's
# history and in every local user's process list.
HEADERS_HELP = "a JSON file of request headers to send besides the signature (an API key)"
CERTIFICATE_HELP = "a PEM file: client certificate and its private key, for mutual TLS"


@endpoints_app.command("add")
def add_endpoint(
    url: str,
    event_type: list[str] = typer.Option([], "--event-type", help="repeatable; wildcards ok"),
    directory: list[str] = typer.Option([], "--directory", help="repeatable; default: all of the organization"),
    description: str | None = None,
    organization_id: str | None = None,
    rate_limit: float | None = typer.Option(None, help="messages per second at most"),
    max_concurrency: int | None = typer.Option(None, help="requests in flight at most"),
    max_payload_bytes: int | None = None,
    timeout: float | None = typer.Option(None, help="seconds for a 2xx (default 15)"),
    fifo: bool = typer.Option(False, "--fifo", help="strict order per directory"),
    retry_schedule: str | None = typer.Option(None, help="comma-separated waits in seconds"),
    headers_file: Path | None = typer.Option(None, help=HEADERS_HELP),
    client_certificate: Path | None = typer.Option(None, help=CERTIFICATE_HELP),
) -> None:
    """Subscribe a URL; prints its signing secret once."""
    body: dict[str, Any] = {"url": url, "fifo": fifo, **receiver_auth(headers_file, client_certificate)}
    optional = {
        "event_types": event_type or None,
        "directory_ids": directory or None,
        "description": description,
        "organization_id": organization_id,
        "rate_limit_per_second": rate_limit,
        "max_concurrency": max_concurrency,
        "max_payload_bytes": max_payload_bytes,
        "timeout_seconds": timeout,
        "retry_schedule": [float(x) for x in retry_schedule.split(",")] if retry_schedule else None,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    e = request("POST", "/v1/endpoints", json=body)
    console.print(f"endpoint [bold]{e['id']}[/bold] -> {e['url']}")
    console.print(f"signing secret (shown once): [bold]{e['secret']}[/bold]")


def receiver_auth(headers_file: Path | None, client_certificate: Path | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if headers_file is not None:
        try:
            out["headers"] = json.loads(headers_file.read_text())
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(f"{headers_file}: {exc}", param_hint="--headers-file") from None
    if client_certificate is not None:
        try:
            out["client_certificate"] = client_certificate.read_text()
        except OSError as exc:
            raise typer.BadParameter(str(exc), param_hint="--client-certificate") from None
    return out


@endpoints_app.command("auth")
def set_receiver_auth(
    endpoint_id: str,
    headers_file: Path | None = typer.Option(None, help=HEADERS_HELP),
    client_certificate: Path | None = typer.Option(None, help=CERTIFICATE_HELP),
    no_headers: bool = typer.Option(False, "--no-headers", help="remove the custom headers"),
    no_client_certificate: bool = typer.Option(False, "--no-client-certificate", help="remove the certificate"),
) -> None:
    """Set or remove what the receiver asks for besides the signature (write-only)."""
    body = receiver_auth(headers_file, client_certificate)
    if no_headers:
        body["headers"] = {}
    if no_client_certificate:
        body["client_certificate"] = None
    if not body:
        raise typer.BadParameter("nothing to change: give a file or a --no-… option")
    e = request("PATCH", f"/v1/endpoints/{endpoint_id}", json=body)
    print_receiver_auth(e)


def print_receiver_auth(e: dict[str, Any]) -> None:
    names = e.get("header_names") or []
    cert = e.get("client_certificate")
    console.print(f"custom headers: {', '.join(names) if names else 'none'}")
    console.print(
        f"client certificate: {cert['subject']}, until {cert['not_valid_after']}"
        if cert
        else "client certificate: none"
    )


@endpoints_app.command("list")
def list_endpoints() -> None:
    """Endpoints: URL, enabled, health (circuit breaker) and the event types they get."""
    table = new_table("id", "url", "enabled", "health", "event types")
    for e in request("GET", "/v1/endpoints"):
        table.add_row(
            e["id"], e["url"], str(e["enabled"]), e["health"].replace("_", " "), ", ".join(e["event_types"] or ["*"])
        )
    console.print(table)


@endpoints_app.command("delete")
def delete_endpoint(endpoint_id: str, yes: bool = typer.Option(False, "--yes", help="do not ask")) -> None:
    """Delete an endpoint: its dispatcher stops and nothing more is sent to it."""
    if not yes:
        typer.confirm(f"delete {endpoint_id}? Its pending deliveries are dropped.", abort=True)
    request("DELETE", f"/v1/endpoints/{endpoint_id}")
    console.print(f"deleted {endpoint_id}")


@endpoints_app.command("show")
def show_endpoint(endpoint_id: str) -> None:
    """An endpoint's settings, health (circuit breaker) and deliveries by status."""
    e = request("GET", f"/v1/endpoints/{endpoint_id}")
    console.print(f"[bold]{e['id']}[/bold] -> {e['url']}  ({'enabled' if e['enabled'] else 'disabled'})")
    if not e["enabled"]:
        console.print(f"disabled: {e['disabled_reason']}")
    health = e["health"].replace("_", " ")
    if e["health"] == EndpointHealth.CIRCUIT_OPEN:
        health += f" since {e['breaker_opened_at']}, next probe {e['next_probe_at'] or 'with the next event'}"
    elif e["health"] == EndpointHealth.FAILING:
        health += f" since {e['failing_since']}"
    console.print(
        f"health: {health}; {e['consecutive_failures']} failed attempts since the last success "
        f"({e['last_success_at'] or 'none yet'})"
    )
    print_receiver_auth(e)
    counts = e.get("delivery_counts") or {}
    console.print("deliveries: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))


@endpoints_app.command("disable")
def disable_endpoint(endpoint_id: str, reason: str = "disabled by an operator") -> None:
    """Stop delivering; new events are kept for a later `recover`."""
    e = request("POST", f"/v1/endpoints/{endpoint_id}/disable", json={"reason": reason})
    console.print(f"{e['id']} disabled: {e['disabled_reason']}")


@endpoints_app.command("enable")
def enable_endpoint(endpoint_id: str) -> None:
    """Resume delivering pending events."""
    e = request("POST", f"/v1/endpoints/{endpoint_id}/enable")
    console.print(f"{e['id']} enabled")


@endpoints_app.command("rotate-secret")
def rotate_secret(
    endpoint_id: str,
    overlap_seconds: float | None = typer.Option(None, help="how long the old secret keeps signing (default 24 h)"),
) -> None:
    """New signing secret (shown once); both sign until the overlap ends."""
    body = {"overlap_seconds": overlap_seconds} if overlap_seconds is not None else {}
    r = request("POST", f"/v1/endpoints/{endpoint_id}/rotate-secret", json=body)
    console.print(f"new signing secret (shown once): [bold]{r['secret']}[/bold]")
    console.print(f"the old secret keeps signing until {r['previous_secret_expires_at']}")


@endpoints_app.command("recover")
def recover(endpoint_id: str, since: str = typer.Option(..., help="ISO time, e.g. 2026-11-28T00:00:00Z")) -> None:
    """Requeue every delivery created since a time that has not succeeded, to be sent now."""
    r = request("POST", f"/v1/endpoints/{endpoint_id}/recover", json={"since": since})
    console.print(f"{r['requeued']} deliveries requeued")


@endpoints_app.command("replay")
def replay(
    endpoint_id: str,
    directory: str = typer.Option(..., "--directory"),
    since_sequence: int | None = None,
    since: str | None = None,
) -> None:
    """Send a directory's events again since a sequence or a time (same webhook-ids)."""
    body: dict[str, Any] = {"directory_id": directory}
    if since_sequence is not None:
        body["since_sequence"] = since_sequence
    if since:
        body["since"] = since
    r = request("POST", f"/v1/endpoints/{endpoint_id}/replay", json=body)
    console.print(f"{r['requeued']} events queued")


@endpoints_app.command("resend")
def resend(endpoint_id: str, delivery_id: int) -> None:
    """Send one delivery again."""
    d = request("POST", f"/v1/endpoints/{endpoint_id}/deliveries/{delivery_id}/resend")
    console.print(f"delivery {d['id']} ({d['event_id']}) requeued")


@endpoints_app.command("skip")
def skip(endpoint_id: str, delivery_id: int) -> None:
    """Give up on one delivery (unblocks a FIFO endpoint); it stays recoverable."""
    d = request("POST", f"/v1/endpoints/{endpoint_id}/deliveries/{delivery_id}/skip")
    console.print(f"delivery {d['id']} ({d['event_id']}) skipped")


@endpoints_app.command("deliveries")
def list_deliveries(
    endpoint_id: str,
    status: str | None = typer.Option(None, help="pending, retrying, held, succeeded, failed or skipped"),
    limit: int = typer.Option(50, help="at most this many, newest first"),
) -> None:
    """An endpoint's deliveries: status, attempts, the last answer and the next attempt."""
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    page = request("GET", f"/v1/endpoints/{endpoint_id}/deliveries", params=params)
    table = new_table("delivery", "event", "type", "status", "attempts", "last", "next attempt")
    for d in page["data"]:
        table.add_row(
            str(d["id"]),
            d["event_id"],
            d["event_type"],
            d["status"],
            str(d["attempts"]),
            str(d["last_status_code"] or d["last_error"] or ""),
            d["next_attempt_at"] or "",
        )
    console.print(table)


@app.command()
def events(
    directory_id: str | None = typer.Option(None, "--directory"),
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing new events"),
    as_json: bool = typer.Option(False, "--json", help="one JSON envelope per line"),
    after: str | None = None,
    limit: int = 100,
) -> None:
    """Print events, oldest first."""
    from dirhook.receiver import print_event

    cursor = after
    try:
        while True:
            params: dict[str, Any] = {"limit": limit}
            if directory_id:
                params["directory_id"] = directory_id
            if cursor:
                params["after"] = cursor
            page = request("GET", "/v1/events", params=params)
            for event in page["data"]:
                if as_json:
                    sys.stdout.write(json.dumps(event) + "\n")
                else:
                    print_event(event, {})
            sys.stdout.flush()
            cursor = page["next_cursor"] or cursor
            if page["has_more"]:
                continue
            if not follow:
                return
            time.sleep(1)
    except KeyboardInterrupt:
        return
