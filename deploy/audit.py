"""Known vulnerabilities of the locked packages: pip-audit over the lock files, with PyPI's advisory data.

    python deploy/audit.py          # CI: exit 1 on a finding not accepted below, or on a partial audit

pip-audit reads the advisories of each pinned release from PyPI's per-release JSON API. Where that API does
not answer at all (a proxy that serves only the package index, as on some build machines), every package
comes back unaudited: that is reported as a skip with its reason, never as a pass; a run where only some
packages could be audited fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ("requirements/runtime.txt", "requirements/dev.txt")

# Findings accepted, each with why (a vulnerability with no fixed release that cannot reach us, say).
# Empty today; an entry names the advisory id, the package and the reason, and is removed with the fix.
ACCEPTED: dict[str, str] = {}


def verdict(lock: str, report: dict) -> tuple[str, list[str]]:
    """The outcome, "passed", "skipped" (no package could be audited: the service did not answer) or
    "failed", with what to print."""
    dependencies = report.get("dependencies", [])
    skipped = [entry for entry in dependencies if "skip_reason" in entry]
    findings = [
        f"{lock}: {entry['name']} {entry['version']}: {vulnerability['id']}"
        + (
            f" (fixed in {', '.join(vulnerability['fix_versions'])})"
            if vulnerability.get("fix_versions")
            else " (no fix)"
        )
        for entry in dependencies
        for vulnerability in entry.get("vulns", [])
    ]
    if dependencies and len(skipped) == len(dependencies):
        return "skipped", [
            f"{lock}: no package could be audited ({skipped[0]['skip_reason']}): PyPI's vulnerability data "
            "does not answer from this machine"
        ]
    if findings or skipped:
        return "failed", findings + [f"{lock}: not audited: {entry['skip_reason']}" for entry in skipped]
    return "passed", [f"{lock}: {len(dependencies)} packages, no known vulnerability"]


def audit(lock: str) -> tuple[str, list[str]]:
    environment = dict(os.environ)
    # pip-audit talks HTTPS through requests: the CA store pip is told to use, where one is.
    if "REQUESTS_CA_BUNDLE" not in environment and environment.get("PIP_CERT"):
        environment["REQUESTS_CA_BUNDLE"] = environment["PIP_CERT"]
    command = [sys.executable, "-m", "pip_audit", "--requirement", lock, "--disable-pip"]
    command += ["--progress-spinner", "off", "--format", "json", "--desc", "off"]
    for advisory in ACCEPTED:
        command += ["--ignore-vuln", advisory]
    result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        return "failed", [
            f"{lock}: pip-audit gave no report (exit {result.returncode}): {result.stderr.strip()}"
        ]
    return verdict(lock, report)


def main() -> int:
    outcomes = []
    for lock in LOCKS:
        outcome, lines = audit(lock)
        outcomes.append(outcome)
        for line in lines:
            print(("pip-audit skipped: " if outcome == "skipped" else "") + line)
    return 1 if "failed" in outcomes else 0


if __name__ == "__main__":
    sys.exit(main())
