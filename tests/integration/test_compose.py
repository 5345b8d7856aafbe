"""docker-compose.yml parses (Debian's docker-compose needs no engine for `config`) and
speaks dirhook's settings."""

import os
import re
import shlex
import subprocess
from pathlib import Path

import yaml

from dirhook.config import Settings


def _config() -> dict:
    env = {**os.environ, "DIRHOOK_ADMIN_TOKEN": "compose-check-" + "c" * 32, "DIRHOOK_ENCRYPTION_KEYS": '{"k1": "x"}'}
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


def _host_ip(port: dict | str) -> str:
    """The address a published port binds (docker-compose 1.x writes `ip:host:container/tcp`)."""
    if isinstance(port, dict):
        return port.get("host_ip") or "0.0.0.0"
    parts = str(port).split(":")
    return parts[0] if len(parts) == 3 else "0.0.0.0"


def test_only_the_api_is_published_beyond_this_host():
    """Whoever reaches Temporal's frontend or its UI can start, signal or terminate any
    workflow: they stay on the compose network or this host's loopback."""
    ports = {(name, _host_ip(p)) for name, service in _config()["services"].items() for p in service.get("ports", [])}
    assert "temporal" not in {name for name, _ in ports} and "postgresql" not in {name for name, _ in ports}
    assert {name for name, ip in ports if ip != "127.0.0.1"} == {"api"}, ports


# -- the README's commands, checked against the file ------------------------------------------
ROOT = Path(__file__).resolve().parents[2]


def _readme_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Deploying with Docker Compose") :]
    return section[section.index("```sh\n") + 6 : section.index("\n```", section.index("```sh\n"))]


def _published_ports(config: dict) -> set[int]:
    ports = set()
    for service in config["services"].values():
        for p in service.get("ports", []):
            ports.add(int(p["published"]) if isinstance(p, dict) else int(str(p).split(":")[-2]))
    return ports


def test_the_readme_compose_commands_name_what_the_file_has(tmp_path):
    block = _readme_block()
    # Run the README's own .env lines, in a shell, with none of our variables around.
    dotenv_script = block[block.index("cat > .env") : block.index("\nEOF\n") + 5]
    clean = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    subprocess.run(["bash", "-c", dotenv_script], cwd=tmp_path, env=clean, check=True, timeout=30)
    commands = [line.split("#")[0] for line in block.splitlines() if line.startswith("docker compose ")]
    assert len(commands) >= 3, block
    for line in commands:
        args = shlex.split(line)[2:]
        profiles = [args[i + 1] for i, a in enumerate(args) if a == "--profile"]
        out = subprocess.run(
            [
                "docker-compose",
                "-f",
                str(ROOT / "docker-compose.yml"),
                "--project-directory",
                str(ROOT),
                "--env-file",
                str(tmp_path / ".env"),
                *[f"--profile={p}" for p in profiles],
                "config",
            ],
            env=clean,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, (line, out.stderr)
        services = set(yaml.safe_load(out.stdout)["services"])
        rest = [a for i, a in enumerate(args) if a != "--profile" and (i == 0 or args[i - 1] != "--profile")]
        subcommand, options = rest[0], rest[1:]
        named = [a.split("=")[0] for i, a in enumerate(options) if i > 0 and options[i - 1] == "--scale"]
        named += [a for i, a in enumerate(options) if not a.startswith("-") and (i == 0 or options[i - 1] != "--scale")]
        assert subcommand in {"up", "logs", "ps", "down", "restart", "stop"}, line
        assert set(named) <= services, f"{line}: {set(named) - services} not in docker-compose.yml"
    everything = subprocess.run(
        [
            "docker-compose",
            "-f",
            str(ROOT / "docker-compose.yml"),
            "--project-directory",
            str(ROOT),
            "--env-file",
            str(tmp_path / ".env"),
            "--profile=demo",
            "config",
        ],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    readme_ports = {int(p) for p in re.findall(r"localhost:(\d+)", block)}
    assert readme_ports and readme_ports <= _published_ports(yaml.safe_load(everything.stdout))
