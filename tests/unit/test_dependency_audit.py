"""The dependency audit's judgement (scripts/audit_dependencies.py): a known vulnerability
fails CI unless accepted with a reason, and a package the service could not judge is never
counted as audited."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "audit_dependencies", Path(__file__).resolve().parents[2] / "scripts" / "audit_dependencies.py"
)
assert _SPEC and _SPEC.loader
audit = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = audit  # dataclasses look their module up there
_SPEC.loader.exec_module(audit)

INSTALLED = audit.parse_frozen("Jinja2==2.10\ntyping_extensions==4.16.0\nhttpx==0.28.1\n-e git+https://x#egg=dirhook\n")
VULNERABLE = {
    "dependencies": [
        {
            "name": "jinja2",
            "version": "2.10",
            "vulns": [{"id": "PYSEC-2019-217", "fix_versions": ["2.10.1"], "aliases": ["CVE-2019-10906"]}],
        },
        {"name": "httpx", "version": "0.28.1", "vulns": []},
    ]
}


def no_page(name):
    raise AssertionError(f"{name} was audited by pip-audit: no page should be asked for")


def test_a_known_vulnerability_fails_and_says_how_to_fix_it(capsys):
    report = audit.judge(INSTALLED, VULNERABLE, {}, no_page)
    assert [(f.name, f.id) for f in report.findings] == [("jinja2", "PYSEC-2019-217")]
    assert report.exit_code(strict=False) == 1
    audit.print_report(report)
    out = capsys.readouterr().out
    assert "VULNERABLE jinja2 2.10: PYSEC-2019-217" in out and "fixed in 2.10.1" in out
    assert "accepted-vulnerabilities.txt" in out


def test_an_accepted_vulnerability_passes_by_any_of_its_names():
    accepted = audit.read_accepted("# comment\nCVE-2019-10906  sandbox unused by dirhook; review 2027-03-01\n")
    report = audit.judge(INSTALLED, VULNERABLE, accepted, no_page)
    assert not report.findings and [f.id for f in report.accepted] == ["PYSEC-2019-217"]
    assert report.exit_code(strict=True) == 0


def test_an_acceptance_without_a_reason_is_refused():
    with pytest.raises(ValueError, match="line 2: GHSA-1234 needs a reason"):
        audit.read_accepted("# ok\nGHSA-1234\n")


def test_skipped_packages_are_judged_from_the_project_page_only_at_its_latest_release():
    skipped = {
        "dependencies": [
            {"name": "jinja2", "skip_reason": "Dependency not found on PyPI"},
            {"name": "typing-extensions", "skip_reason": "Dependency not found on PyPI"},
            {"name": "httpx", "skip_reason": "Dependency not found on PyPI"},
        ]
    }
    pages = {
        "jinja2": {"info": {"version": "2.10"}, "vulnerabilities": [{"id": "GHSA-x", "aliases": [], "fixed_in": []}]},
        "typing-extensions": {"info": {"version": "4.17.0"}, "vulnerabilities": []},
        "httpx": None,  # PyPI did not answer
    }
    report = audit.judge(INSTALLED, skipped, {}, pages.get)
    assert [(f.name, f.id) for f in report.findings] == [("jinja2", "GHSA-x")]
    assert report.audited == 1
    assert set(report.unaudited) == {"typing-extensions", "httpx"}  # freeze's typing_extensions, canonical
    assert "4.17.0 latest" in report.unaudited["typing-extensions"]


def test_unaudited_packages_warn_and_fail_only_when_strict(capsys):
    report = audit.judge(INSTALLED, {"dependencies": [{"name": "httpx", "skip_reason": "x"}]}, {}, lambda n: None)
    assert report.exit_code(strict=False) == 0 and report.exit_code(strict=True) == 1
    audit.print_report(report)
    assert "WARNING: 1 package(s) could not be audited" in capsys.readouterr().out
