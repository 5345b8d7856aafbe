"""The OpenAPI document is the contract (issue 14, finding 12): `schemathesis run
…/openapi.json --checks all` against the embedded stack finds nothing — no server error, no
undocumented status code, no response off its schema, no valid request refused, no invalid
one accepted. Bounded (a fixed seed, a few examples per operation); every URL the fuzzer
would have dirhook connect to points at a closed port on loopback
(tests/support/schemathesis_hooks.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.dev_process import dev_env, interrupt, start_dev, wait_http

ROOT = Path(__file__).resolve().parents[2]
# Longer runs by hand: DIRHOOK_FUZZ_EXAMPLES=200 DIRHOOK_FUZZ_SEED=7 scripts/test tests/integration/test_openapi_contract.py
EXAMPLES = int(os.environ.get("DIRHOOK_FUZZ_EXAMPLES", "20"))
SEED = int(os.environ.get("DIRHOOK_FUZZ_SEED", "3"))


@pytest.mark.timeout(1200)  # the run is bounded by examples; the subprocess by its own timeout
def test_schemathesis_finds_nothing_against_the_embedded_stack(tmp_path):
    env, ports = dev_env(tmp_path / "data")
    # The fuzzer's Entra directories point at loopback too: let the stack accept that.
    env["DIRHOOK_ALLOW_PRIVATE_ENTRA_HOSTS"] = "true"
    env["DIRHOOK_ALLOW_PRIVATE_GOOGLE_HOSTS"] = "true"
    api = f"http://127.0.0.1:{ports['API_PORT']}"
    log = tmp_path / "dev.log"
    proc = start_dev(env, log)
    try:
        wait_http(f"{api}/healthz", 120, proc, log)
        token = (tmp_path / "data" / "admin_token").read_text().strip()
        document = httpx.get(f"{api}/openapi.json", timeout=30).json()
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                if path.startswith("/v1/"):  # every resource route says how it refuses
                    assert {"401", "422"} <= set(operation["responses"]), (method, path)
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                f"{api}/openapi.json",
                "--checks",
                "all",
                "--header",
                f"Authorization: Bearer {token}",
                "--max-examples",
                str(EXAMPLES),
                "--seed",
                str(SEED),
                "--no-color",
            ],
            env={**os.environ, "PYTHONPATH": str(ROOT), "SCHEMATHESIS_HOOKS": "tests.support.schemathesis_hooks"},
            cwd=tmp_path,  # schemathesis keeps its cache in the working directory
            capture_output=True,
            text=True,
            timeout=1000,
        )
        summary = run.stdout[run.stdout.rfind("SUMMARY") :]
        print(summary)
        assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
        assert "API Operations" in summary and "Selected: " in summary  # it ran, and tested the operations
    finally:
        interrupt(proc)
