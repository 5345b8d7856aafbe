"""Known-vulnerable dependencies: pip-audit over exactly what .venv holds, failing on any
vulnerability not accepted in .ci/accepted-vulnerabilities.txt.

Run by scripts/audit-dependencies (which gives pip-audit a venv of its own, so its own
dependencies are not audited as dirhook's). The audited set is `pip freeze` of .venv: the
versions the suite runs, dirhook itself left out.

pip-audit asks PyPI's per-release JSON API (`/pypi/<name>/<version>/json`). Where that
answers 404 for everything (a mirror that serves project pages only, as on our CI machine),
pip-audit marks every package "skipped" and still says "No known vulnerabilities found".
This script does not take that for an audit: it asks the project page instead, whose
`vulnerabilities` are those of the project's latest release, and so judges a package only
when the installed version is that release. Whatever stays unjudged is listed with a
warning; DIRHOOK_AUDIT_STRICT=1 makes it a failure. (A small hand-written fallback, since
pip-audit has no service that reads project pages.)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

ROOT = Path(__file__).resolve().parents[1]
ACCEPTED = ROOT / ".ci" / "accepted-vulnerabilities.txt"
PROJECT_PAGE = "https://pypi.org/pypi/{name}/json"


@dataclass
class Finding:
    name: str
    version: str
    id: str
    aliases: list[str]
    fixed_in: list[str]


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    accepted: list[Finding] = field(default_factory=list)
    unaudited: dict[str, str] = field(default_factory=dict)  # name → why
    audited: int = 0

    def exit_code(self, strict: bool) -> int:
        if self.findings:
            return 1
        return 1 if strict and self.unaudited else 0


def read_accepted(text: str) -> dict[str, str]:
    """ID → reason, from lines `ID  reason…` (# starts a comment line). An ID with no reason
    is refused: accepting a vulnerability is a decision someone must be able to read."""
    accepted = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        vuln_id, _, reason = line.partition(" ")
        if not reason.strip():
            raise ValueError(f"line {number}: {vuln_id} needs a reason after it (why it is accepted, until when)")
        accepted[vuln_id] = reason.strip()
    return accepted


def canonical(name: str) -> str:
    """PEP 503's form: pip freeze writes `typing_extensions`, pip-audit `typing-extensions`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_frozen(text: str) -> dict[str, str]:
    """name → version, from `pip freeze` (name==version lines; anything else is not on PyPI)."""
    out = {}
    for line in text.splitlines():
        name, sep, version = line.strip().partition("==")
        if sep and name and not line.startswith("#"):
            out[canonical(name)] = version
    return out


def judge(
    installed: dict[str, str],
    pip_audit_json: dict,
    accepted: dict[str, str],
    project_page: object,
) -> Report:
    """The report from pip-audit's JSON; for the packages it skipped, ``project_page(name)``
    (the PyPI project JSON, or None when unreachable) decides where it can."""
    report = Report()

    def record(finding: Finding) -> None:
        known = {finding.id, *finding.aliases}
        (report.accepted if known & accepted.keys() else report.findings).append(finding)

    for dep in pip_audit_json.get("dependencies", []):
        name = canonical(dep["name"])
        version = dep.get("version") or installed.get(name, "?")
        if "skip_reason" not in dep:
            report.audited += 1
            for v in dep.get("vulns", []):
                record(Finding(name, version, v["id"], v.get("aliases", []), v.get("fix_versions", [])))
            continue
        if name not in installed:
            report.unaudited[name] = dep["skip_reason"]
            continue
        page = project_page(name)  # type: ignore[operator]
        if page is None:
            report.unaudited[name] = "PyPI did not answer for it"
            continue
        latest = page.get("info", {}).get("version")
        if latest != installed[name]:
            report.unaudited[name] = f"{installed[name]} installed, {latest} latest: PyPI judges only the latest here"
            continue
        report.audited += 1
        for v in page.get("vulnerabilities") or []:
            if v.get("withdrawn"):
                continue
            record(Finding(name, installed[name], v["id"], v.get("aliases") or [], v.get("fixed_in") or []))
    return report


def fetch_project_page(name: str) -> dict | None:
    try:
        with urllib.request.urlopen(PROJECT_PAGE.format(name=name), timeout=20) as response:
            return json.load(response)
    except (urllib.error.URLError, TimeoutError, ValueError):
        return None


def print_report(report: Report, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    for f in report.findings:
        fix = f"fixed in {', '.join(f.fixed_in)}" if f.fixed_in else "no fix released"
        print(f"VULNERABLE {f.name} {f.version}: {f.id} ({', '.join(f.aliases) or 'no aliases'}; {fix})", file=out)
    for f in report.accepted:
        print(f"accepted   {f.name} {f.version}: {f.id} (.ci/accepted-vulnerabilities.txt)", file=out)
    if report.unaudited:
        print(
            f"WARNING: {len(report.unaudited)} package(s) could not be audited (the vulnerability service "
            "did not answer for their versions); this run says nothing about them:",
            file=out,
        )
        for name, why in sorted(report.unaudited.items()):
            print(f"  {name}: {why}", file=out)
    print(
        f"dependency audit: {report.audited} audited, {len(report.unaudited)} unaudited, "
        f"{len(report.findings)} vulnerable, {len(report.accepted)} accepted",
        file=out,
    )
    if report.findings:
        print(
            "Upgrade the package, or accept the vulnerability with its ID and a reason on a line "
            "of .ci/accepted-vulnerabilities.txt.",
            file=out,
        )


def main() -> int:
    venv_python = ROOT / ".venv" / "bin" / "python"
    frozen = subprocess.run(
        [str(venv_python), "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = parse_frozen(frozen)
    accepted = read_accepted(ACCEPTED.read_text() if ACCEPTED.exists() else "")
    requirements = ROOT / ".venv" / "audited-requirements.txt"
    requirements.write_text("".join(f"{n}=={v}\n" for n, v in sorted(installed.items())))
    command = [sys.executable, "-m", "pip_audit", "-r", str(requirements), "--no-deps", "--disable-pip"]
    command += ["--format", "json", "--aliases", "on", "--progress-spinner", "off"]
    audit = subprocess.run(command, capture_output=True, text=True, timeout=600)
    try:
        result = json.loads(audit.stdout)
    except json.JSONDecodeError:
        # pip-audit itself failed (no network at all): every package is unaudited.
        print("pip-audit failed: " + " ".join(audit.stderr.strip().splitlines()[-1:]), file=sys.stderr)
        result = {"dependencies": [{"name": n, "skip_reason": "pip-audit could not run"} for n in installed]}
    report = judge(installed, result, accepted, fetch_project_page)
    print_report(report)
    return report.exit_code(strict=os.environ.get("DIRHOOK_AUDIT_STRICT") == "1")


if __name__ == "__main__":
    sys.exit(main())
