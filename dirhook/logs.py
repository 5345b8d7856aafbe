"""Logging: one JSON object per line (for Splunk, Loki, CloudWatch…) or plain text, with the
IDs an operator searches by, and secrets masked whatever a message carries.

Hand-written rather than python-json-logger: twenty lines, and the Temporal SDK's context
(it attaches ``temporal_workflow`` / ``temporal_activity`` dicts to records) needs mapping
to flat fields anyway.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from datetime import UTC, datetime

ID_FIELDS = ("organization_id", "directory_id", "endpoint_id", "event_id", "delivery_id", "workflow_id")
SECRET_PATTERNS = [
    (re.compile(r"whsec_[A-Za-z0-9+/=]+"), "whsec_***"),
    (re.compile(r"dh_admin_[A-Za-z0-9_\-]+"), "dh_admin_***"),
    (re.compile(r"(dhk_key_[a-z0-9]+\.)[A-Za-z0-9_\-]+"), r"\1***"),  # an API key: its ID stays readable
    (re.compile(r"dhscim_[A-Za-z0-9_\-]+"), "dhscim_***"),
    (re.compile(r"dhcodec_[A-Za-z0-9_\-]+"), "dhcodec_***"),  # the embedded UI's codec URL
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=\-]+"), r"\1***"),
    (re.compile(r"(?i)(password[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"), r"\1***"),
]


def redact(text: str) -> str:
    for pattern, replacement in SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name in ID_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        for key in ("temporal_workflow", "temporal_activity"):
            ctx = getattr(record, key, None)
            if isinstance(ctx, dict):
                for src, dst in (
                    ("workflow_id", "workflow_id"),
                    ("run_id", "run_id"),
                    ("workflow_type", "workflow_type"),
                    ("activity_type", "activity_type"),
                ):
                    if ctx.get(src):
                        line[dst] = ctx[src]
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Whatever else a process would print goes through the same lines: Python warnings,
    # and exceptions nobody caught (in any thread).
    logging.captureWarnings(True)
    sys.excepthook = lambda kind, exc, tb: logging.getLogger("dirhook").critical(
        "uncaught exception", exc_info=(kind, exc, tb)
    )
    sys.unraisablehook = lambda u: logging.getLogger("dirhook").warning(
        "exception ignored in %r: %s", u.object, u.err_msg or "", exc_info=u.exc_value
    )
    threading.excepthook = lambda args: logging.getLogger("dirhook").error(
        "uncaught exception in thread %s", getattr(args.thread, "name", "?"), exc_info=args.exc_value
    )
