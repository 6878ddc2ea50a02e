"""The authorities' guide (docs/verifying-exports.md): its commands, run as written on a real export, give
the XML and the fingerprints verify_export gives, with stock OpenSSL and tools, with the management
command, and with the eci-verify-export script in a shell with nothing of the platform."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from lxml import etree

from exports.format import SCHEMA_PATH, export_schema
from tests.exports.conftest import AuthorityKeys, Factory, Verify
from tests.exports.verifying import REPOSITORY, Delivered, deliver, run_script

README = REPOSITORY / "docs" / "verifying-exports.md"
README_SECTION = "## How an authority verifies an export"
OPENSSL = shutil.which("openssl")


# The README's commands, run as written -----------------------------------------------------------------


def readme_commands() -> list[str]:
    """The commands of the README's fenced blocks in the authorities' section, continuation lines joined."""
    text = README.read_text()
    start = text.index(README_SECTION)
    end = text.find("\n## ", start + len(README_SECTION))
    section = text[start : end if end != -1 else None]
    blocks = re.findall(r"^```sh\n(.*?)^```", section, flags=re.DOTALL | re.MULTILINE)
    joined = "\n".join(blocks).replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def test_the_readme_documents_the_commands_that_are_tested() -> None:
    programs = [shlex.split(command)[0:3] for command in readme_commands()]
    assert programs == [
        ["openssl", "x509", "-noout"],
        ["openssl", "cms", "-decrypt"],
        ["openssl", "cms", "-verify"],
        ["sha256sum", "BE.xml.p7m", "BE.xml"],
        ["grep", "-c", "<signature>"],
        ["xmllint", "--stream", "--noout"],
        ["eci-verify-export", "BE.xml.p7m", "--authority-key"],
    ]
    assert "exports/schema/export-v1.xsd" in README.read_text()
    assert (REPOSITORY / "exports/schema/export-v1.xsd").resolve() == SCHEMA_PATH.resolve()


def _authority_folder(folder: Path, delivered: Delivered, keys: AuthorityKeys) -> Path:
    """The files the README names, in a folder of their own."""
    folder.mkdir()
    shutil.copy(delivered.file, folder / "BE.xml.p7m")
    shutil.copy(delivered.manifest_path, folder / "BE.manifest.json")
    (folder / "authority.key").write_bytes(keys.private_key_pem)
    (folder / "authority.crt").write_bytes(keys.certificate_pem)
    shutil.copy(settings.EXPORT_SIGNING_CERTIFICATE_FILE, folder / "platform.crt")
    (folder / "exports" / "schema").mkdir(parents=True)
    shutil.copy(SCHEMA_PATH, folder / "exports" / "schema" / SCHEMA_PATH.name)
    return folder


@pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")
def test_the_readmes_openssl_commands_give_the_xml_verify_export_gives(
    exporting_factory: Factory,
    authority_keys: AuthorityKeys,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    verify: Verify,
) -> None:
    delivered = deliver(exporting_factory, authority_keys, tmp_path / "received", country="BE", count=1)
    manifest = delivered.manifest
    commands = [shlex.split(command) for command in readme_commands()]
    by_program = {command[0]: command for command in commands}

    stock = _authority_folder(tmp_path / "stock", delivered, authority_keys)
    fingerprint, decrypt, verify_signature = (c for c in commands if c[0] == "openssl")
    printed = subprocess.run(fingerprint, cwd=stock, check=True, capture_output=True, text=True).stdout
    assert printed.strip().split("=", 1)[1] == manifest["platform_certificate_sha256"]
    subprocess.run(decrypt, cwd=stock, check=True, capture_output=True)
    verified = subprocess.run(verify_signature, cwd=stock, check=True, capture_output=True, text=True)
    assert "CMS Verification successful" in verified.stderr
    xml = (stock / "BE.xml").read_bytes()
    export_schema().assertValid(etree.fromstring(xml))

    if shutil.which("sha256sum"):
        digests = subprocess.run(
            by_program["sha256sum"], cwd=stock, check=True, capture_output=True, text=True
        ).stdout.split()
        assert digests == [manifest["file"]["sha256"], "BE.xml.p7m", manifest["content"]["sha256"], "BE.xml"]
    counted = subprocess.run(by_program["grep"], cwd=stock, check=True, capture_output=True, text=True)
    assert int(counted.stdout) == manifest["records"] == 1
    if shutil.which("xmllint"):
        validated = subprocess.run(by_program["xmllint"], cwd=stock, capture_output=True, text=True)
        assert validated.returncode == 0, validated.stderr
        assert "BE.xml validates" in validated.stderr

    # The one-command alternative, as documented, in a folder of its own.
    alternative = _authority_folder(tmp_path / "alternative", delivered, authority_keys)
    monkeypatch.chdir(alternative)
    arguments = by_program["eci-verify-export"][1:]
    summary, error = verify(*arguments)
    assert error is None, summary
    assert summary["manifest"]["checked"] and summary["manifest"]["path"] == "BE.manifest.json"
    assert (alternative / "BE.xml").read_bytes() == xml == delivered.xml

    # And as the console script itself, in a shell with nothing of the platform (no settings, database
    # or Redis), as an authority runs it.
    scripted = _authority_folder(tmp_path / "script", delivered, authority_keys)
    result = run_script(*arguments, cwd=scripted)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["manifest"]["checked"]
    assert (scripted / "BE.xml").read_bytes() == xml
