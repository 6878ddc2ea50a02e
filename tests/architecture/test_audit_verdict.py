"""CI's vulnerability gate (deploy/audit.py) reads pip-audit's report: a finding fails, a partial audit
fails, and an audit where the service answered for no package is a skip that says why, never a pass."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from eci_platform.embedded import REPOSITORY_ROOT


def _audit_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_audit", REPOSITORY_ROOT / "deploy" / "audit.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


audit = _audit_module()
CLEAN = {"name": "django", "version": "5.2.19", "vulns": []}
NOT_FOUND = "Dependency not found on PyPI and could not be audited: {} ({})"


def test_no_finding_passes() -> None:
    outcome, lines = audit.verdict(
        "requirements/runtime.txt", {"dependencies": [CLEAN, {**CLEAN, "name": "lxml"}]}
    )
    assert outcome == "passed"
    assert lines == ["requirements/runtime.txt: 2 packages, no known vulnerability"]


def test_a_finding_fails_and_names_the_fix() -> None:
    vulnerable = {
        "name": "django",
        "version": "5.2.0",
        "vulns": [{"id": "PYSEC-2025-1", "fix_versions": ["5.2.1"], "aliases": ["CVE-2025-1"]}],
    }
    outcome, lines = audit.verdict("requirements/runtime.txt", {"dependencies": [CLEAN, vulnerable]})
    assert outcome == "failed"
    assert lines == ["requirements/runtime.txt: django 5.2.0: PYSEC-2025-1 (fixed in 5.2.1)"]


def test_a_partial_audit_fails() -> None:
    skipped = {"name": "altcha", "skip_reason": NOT_FOUND.format("altcha", "1.0.0")}
    outcome, lines = audit.verdict("requirements/runtime.txt", {"dependencies": [CLEAN, skipped]})
    assert outcome == "failed"
    assert lines == [f"requirements/runtime.txt: not audited: {NOT_FOUND.format('altcha', '1.0.0')}"]


def test_no_package_audited_is_a_skip_with_its_reason() -> None:
    report = {
        "dependencies": [{"name": name, "skip_reason": NOT_FOUND.format(name, "1")} for name in ("a", "b")]
    }
    outcome, lines = audit.verdict("requirements/dev.txt", report)
    assert outcome == "skipped"
    assert "PyPI's vulnerability data does not answer from this machine" in lines[0]
