"""eci-verify-export, the verification as a console script: it runs in a process with no settings, no
database and no Redis in its environment, on real exports, prints what `verify_export` prints, and its
package imports no Django and no app. The script is run as `python -m exports.verification.cli` (what the
`[project.scripts]` entry calls), from this checkout."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from exports.verification import cli
from tests.exports.conftest import AuthorityKeys, Factory, Verify
from tests.exports.verifying import REPOSITORY, Delivered, clean_environment, deliver, leftovers, run_script

# What the verification must never load: the framework, the apps, the platform's configuration, and the
# clients of the services an authority does not have.
FORBIDDEN = (
    "django",
    "tenants",
    "collection",
    "workers",
    "eci_platform",
    "exports.models",
    "exports.services",
    "exports.xml_writer",
    "celery",
    "psycopg",
    "redis",
)


def test_the_verification_imports_no_django_nor_any_app() -> None:
    program = (
        "import importlib, json, pkgutil, sys\n"
        "import exports.verification as package\n"
        "for module in pkgutil.iter_modules(package.__path__, package.__name__ + '.'):\n"
        "    importlib.import_module(module.name)\n"
        f"forbidden = {FORBIDDEN!r}\n"
        "loaded = sorted(m for m in sys.modules if any(m == f or m.startswith(f + '.') for f in forbidden))\n"
        "print(json.dumps({'loaded': loaded, 'modules': sorted(sys.modules)}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=REPOSITORY,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    imported = json.loads(result.stdout)
    assert imported["loaded"] == []
    # The check looks at what it should: the whole package and the crypto library were imported.
    assert {"exports.verification.cli", "exports.verification.verify", "eci_crypto.cms.reader"} <= set(
        imported["modules"]
    )


def test_the_console_script_entry_point_is_the_clis_main() -> None:
    pyproject = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())
    target = pyproject["project"]["scripts"]["eci-verify-export"]
    module_name, _, function_name = target.partition(":")
    assert getattr(importlib.import_module(module_name), function_name) is cli.main
    assert cli.PROGRAM == "eci-verify-export"


@pytest.fixture
def received(exporting_factory: Factory, authority_keys: AuthorityKeys, tmp_path: Path) -> Delivered:
    """A real export with its manifest and the published platform certificate, as an authority has them."""
    delivered = deliver(exporting_factory, authority_keys, tmp_path / "received")
    shutil.copy(settings.EXPORT_SIGNING_CERTIFICATE_FILE, delivered.folder / "platform.crt")
    return delivered


def script_arguments(delivered: Delivered, keys: AuthorityKeys, *more: str | Path) -> list[str | Path]:
    return [
        delivered.file,
        "--authority-key",
        keys.key_path,
        "--platform-certificate",
        delivered.folder / "platform.crt",
        *more,
    ]


def test_the_script_verifies_a_real_export_and_prints_what_the_command_prints(
    received: Delivered, authority_keys: AuthorityKeys, tmp_path: Path, verify: Verify
) -> None:
    out = tmp_path / "DE.xml"
    result = run_script(*script_arguments(received, authority_keys, "--out", out))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 1  # exactly one JSON object
    summary: dict[str, Any] = json.loads(lines[0])
    assert summary["ok"] is True and summary["error"] is None
    assert summary["records"] == received.manifest["records"] == 3
    assert summary["file_sha256"] == received.manifest["file"]["sha256"]
    assert summary["platform_certificate_sha256"] == received.manifest["platform_certificate_sha256"]
    assert summary["manifest"]["checked"] is True and summary["manifest"]["mismatches"] == []
    assert out.read_bytes() == received.xml
    assert out.stat().st_mode & 0o777 == 0o600

    # The management command, on the same inputs, prints the same object.
    out.unlink()
    command_summary, error = verify(*script_arguments(received, authority_keys, "--out", out))
    assert error is None
    assert command_summary == summary


def test_the_script_refuses_a_tampered_file_with_a_clear_message(
    received: Delivered, authority_keys: AuthorityKeys, tmp_path: Path, verify: Verify
) -> None:
    data = bytearray(received.file.read_bytes())
    data[len(data) // 2] ^= 0x01  # in the ciphertext of the XML
    received.file.write_bytes(bytes(data))
    out = tmp_path / "DE.xml"
    result = run_script(*script_arguments(received, authority_keys, "--out", out))
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["ok"] is False and "altered or damaged" in summary["error"]
    assert summary["records"] is None and summary["out"] is None
    assert any(m.startswith("file.sha256:") for m in summary["manifest"]["mismatches"])
    assert result.stderr.strip() == f"eci-verify-export: {summary['error']}"
    assert "Traceback" not in result.stderr
    assert not out.exists() and leftovers(tmp_path) == []

    command_summary, error = verify(*script_arguments(received, authority_keys, "--out", out))
    assert error == summary["error"] and command_summary == summary


def test_the_script_runs_from_any_folder_and_refuses_what_is_not_an_export(
    authority_keys: AuthorityKeys, export_folders: Path, tmp_path: Path
) -> None:
    garbage = tmp_path / "BE.xml.p7m"
    garbage.write_bytes(os.urandom(1000))
    result = run_script(
        garbage.name,
        "--authority-key",
        authority_keys.key_path,
        "--platform-certificate",
        export_folders / "platform.crt",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["ok"] is False and summary["file"] == "BE.xml.p7m" and summary["file_bytes"] == 1000
    assert "not a valid export file" in summary["error"]
    assert "Traceback" not in result.stderr


def test_the_script_needs_the_platform_certificate(authority_keys: AuthorityKeys, tmp_path: Path) -> None:
    """There is no platform configuration to take it from: without it, a usage error (exit 2)."""
    (tmp_path / "BE.xml.p7m").write_bytes(b"x")
    result = run_script(tmp_path / "BE.xml.p7m", "--authority-key", authority_keys.key_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "--platform-certificate" in result.stderr and "required" in result.stderr
