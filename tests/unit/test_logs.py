import json
import logging

from dirhook.logs import JsonFormatter, redact


def record(msg: str, *args, **extra) -> logging.LogRecord:
    r = logging.LogRecord("dirhook.test", logging.WARNING, __file__, 1, msg, args, None)
    for k, v in extra.items():
        setattr(r, k, v)
    return r


def test_json_lines_carry_the_ids_and_temporal_context():
    line = json.loads(
        JsonFormatter().format(
            record(
                "endpoint %s disabled",
                "ep_1",
                endpoint_id="ep_1",
                directory_id="dir_1",
                temporal_activity={"workflow_id": "dispatch/ep_1", "run_id": "r1", "activity_type": "deliver_pending"},
            )
        )
    )
    assert line["message"] == "endpoint ep_1 disabled" and line["level"] == "warning"
    assert line["endpoint_id"] == "ep_1" and line["directory_id"] == "dir_1"
    assert line["workflow_id"] == "dispatch/ep_1" and line["activity_type"] == "deliver_pending"
    assert line["ts"].endswith("Z")


def test_secrets_are_masked_whatever_the_message():
    text = (
        "secret whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo= token dh_admin_abc-DEF_123 "
        'header Authorization: Bearer eyJhbGciOi.x.y {"bind_password": "hunter2"} password=swordfish'
    )
    out = redact(text)
    for secret in ("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo", "abc-DEF_123", "eyJhbGciOi", "hunter2", "swordfish"):
        assert secret not in out
    line = json.loads(JsonFormatter().format(record("%s", text)))
    assert "hunter2" not in line["message"] and "whsec_***" in line["message"]
