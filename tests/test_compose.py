"""docker-compose.yml parses (Debian's docker-compose needs no engine for `config`) and
speaks dirhook's settings."""

import os
import subprocess

import yaml

from dirhook.config import Settings


def _config() -> dict:
    env = {**os.environ, "DIRHOOK_ADMIN_TOKEN": "compose-check"}
    out = subprocess.run(["docker-compose", "config"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def test_compose_file_is_valid_and_wires_dirhook():
    config = _config()
    services = config["services"]
    assert {"postgresql", "temporal", "temporal-ui", "setup", "api", "worker"} <= set(services)
    assert services["setup"]["command"] == ["dirhook", "setup"]
    assert services["worker"]["command"][:2] == ["dirhook", "worker"]
    fields = {name.upper() for name in Settings.model_fields}
    for name in ("api", "worker", "setup"):
        for var in services[name]["environment"]:
            assert var.startswith("DIRHOOK_") and var.removeprefix("DIRHOOK_") in fields, var
    assert services["api"]["depends_on"]["setup"]["condition"] == "service_completed_successfully"
