"""verify_export, the authorities' check of an export file, on real exports (export_request + export_run):
what it reports, what it refuses and how (altered files, wrong keys and certificates, manifests that do
not match, files that are not exports, missing inputs), that --out publishes only verified XML, and that
it needs no database. Signed XML that is not valid: test_verify_export_xml_check.py; the guide's
commands: test_verifying_exports_guide.py; the console script: test_verify_export_cli.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from lxml import etree

from eci_crypto.certificates import (
    certificate_fingerprint,
    certificate_load,
    private_key_load,
    self_signed_certificate_create,
)
from exports.format import export_schema
from exports.services import platform_signing_identity
from tests.exports.conftest import AuthorityKeys, Factory, Verify
from tests.exports.verifying import REPOSITORY, deliver, key_arguments, leftovers


@dataclass(frozen=True)
class Outsider:
    """A key pair that is neither the platform's nor the authority's."""

    key_path: Path
    certificate_path: Path


@pytest.fixture(scope="module")
def outsider(tmp_path_factory: pytest.TempPathFactory) -> Outsider:
    folder = tmp_path_factory.mktemp("outsider")
    private_key_pem, certificate_pem = self_signed_certificate_create("Someone else (test)")
    (folder / "outsider.key").write_bytes(private_key_pem)
    (folder / "outsider.crt").write_bytes(certificate_pem)
    return Outsider(folder / "outsider.key", folder / "outsider.crt")


def test_a_real_export_verifies_and_out_publishes_exactly_its_xml(
    exporting_factory: Factory, authority_keys: AuthorityKeys, tmp_path: Path, verify: Verify
) -> None:
    delivered = deliver(exporting_factory, authority_keys, tmp_path / "received")
    out = tmp_path / "DE.xml"
    summary, error = verify(
        delivered.file,
        *key_arguments(authority_keys),
        "--authority-certificate",
        authority_keys.certificate_path,
        "--platform-certificate",
        settings.EXPORT_SIGNING_CERTIFICATE_FILE,
        "--out",
        out,
    )
    assert error is None, summary
    manifest = delivered.manifest
    platform_fingerprint = certificate_fingerprint(platform_signing_identity().certificate)
    authority_fingerprint = certificate_fingerprint(certificate_load(authority_keys.certificate_pem))
    assert summary["ok"] is True and summary["error"] is None
    assert summary["country"] == manifest["country"] == "DE"
    assert summary["records"] == manifest["records"] == 3
    assert summary["registration_number"] == delivered.registration_number
    assert summary["signed_at"] == manifest["signed_at"]
    assert summary["platform_certificate_sha256"] == manifest["platform_certificate_sha256"]
    assert summary["platform_certificate_sha256"] == platform_fingerprint
    assert summary["authority_certificate_sha256"] == manifest["authority_certificate_sha256"]
    assert summary["authority_certificate_sha256"] == authority_fingerprint
    assert summary["file_sha256"] == manifest["file"]["sha256"]
    assert summary["file_bytes"] == manifest["file"]["bytes"] == delivered.file.stat().st_size
    assert summary["content_sha256"] == manifest["content"]["sha256"]
    assert summary["xsd_valid"] is True
    assert summary["manifest"] == {
        "checked": True,
        "path": str(delivered.manifest_path),
        "mismatches": [],
        "not_compared": [],
        "note": None,
    }
    assert summary["out"] == str(out)
    assert out.read_bytes() == delivered.xml
    assert out.stat().st_mode & 0o777 == 0o600  # personal data: the owner's only
    export_schema().assertValid(etree.parse(str(out)))
    assert leftovers(tmp_path) == []


def test_the_default_platform_certificate_is_the_platforms_own_and_nothing_is_written_without_out(
    exporting_factory: Factory, authority_keys: AuthorityKeys, tmp_path: Path, verify: Verify
) -> None:
    delivered = deliver(exporting_factory, authority_keys, tmp_path)
    before = sorted(tmp_path.iterdir())
    summary, error = verify(delivered.file, *key_arguments(authority_keys))
    assert error is None, summary
    assert summary["platform_certificate_sha256"] == delivered.manifest["platform_certificate_sha256"]
    # Without a certificate of the authority, its fingerprint is reported as not compared.
    assert summary["authority_certificate_sha256"] is None
    assert summary["manifest"]["not_compared"] == ["authority_certificate_sha256"]
    assert summary["out"] is None
    assert sorted(tmp_path.iterdir()) == before


def test_an_out_that_cannot_be_written_is_refused_and_leaves_nothing(
    exporting_factory: Factory, authority_keys: AuthorityKeys, tmp_path: Path, verify: Verify
) -> None:
    delivered = deliver(exporting_factory, authority_keys, tmp_path / "received")
    missing_folder = tmp_path / "no" / "DE.xml"
    summary, error = verify(delivered.file, *key_arguments(authority_keys), "--out", missing_folder)
    assert error is not None and "does not exist" in error and summary["out"] is None
    (tmp_path / "taken").mkdir()
    summary, error = verify(delivered.file, *key_arguments(authority_keys), "--out", tmp_path / "taken")
    assert error is not None and "could not be written" in error
    assert summary["ok"] is False and summary["out"] is None
    assert (tmp_path / "taken").is_dir() and leftovers(tmp_path) == []


def test_a_key_file_that_also_holds_the_certificate_gives_the_authority_fingerprint(
    exporting_factory: Factory, authority_keys: AuthorityKeys, tmp_path: Path, verify: Verify
) -> None:
    delivered = deliver(exporting_factory, authority_keys, tmp_path / "received")
    combined = tmp_path / "authority.pem"
    combined.write_bytes(authority_keys.private_key_pem + authority_keys.certificate_pem)
    summary, error = verify(delivered.file, "--authority-key", combined)
    assert error is None, summary
    assert summary["authority_certificate_sha256"] == delivered.manifest["authority_certificate_sha256"]


def test_an_encrypted_key_opens_with_its_password_file(
    exporting_factory: Factory, authority_keys: AuthorityKeys, tmp_path: Path, verify: Verify
) -> None:
    from cryptography.hazmat.primitives import serialization

    delivered = deliver(exporting_factory, authority_keys, tmp_path / "received")
    encrypted = tmp_path / "authority-encrypted.key"
    encrypted.write_bytes(
        private_key_load(authority_keys.private_key_pem).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"correct horse"),
        )
    )
    password = tmp_path / "password"
    password.write_bytes(b"correct horse\n")
    summary, error = verify(delivered.file, "--authority-key", encrypted, "--key-password-file", password)
    assert error is None, summary
    password.write_bytes(b"wrong\n")
    summary, error = verify(delivered.file, "--authority-key", encrypted, "--key-password-file", password)
    assert error is not None and "cannot be used" in error and "password" in error


def test_a_tampered_byte_fails_and_out_leaves_nothing(
    exporting_factory: Factory, authority_keys: AuthorityKeys, tmp_path: Path, verify: Verify
) -> None:
    delivered = deliver(exporting_factory, authority_keys, tmp_path / "received")
    data = bytearray(delivered.file.read_bytes())
    data[len(data) // 2] ^= 0x01  # in the ciphertext of the XML
    delivered.file.write_bytes(bytes(data))
    out = tmp_path / "DE.xml"
    summary, error = verify(delivered.file, *key_arguments(authority_keys), "--out", out)
    assert error is not None and "altered or damaged" in error
    assert "\n" not in error
    assert summary["ok"] is False and summary["error"] == error
    # Nothing from unauthenticated content is reported, and the damage shows against the manifest.
    assert summary["records"] is None and summary["country"] is None and summary["xsd_valid"] is None
    assert any(m.startswith("file.sha256:") for m in summary["manifest"]["mismatches"])
    assert summary["out"] is None
    assert not out.exists() and leftovers(tmp_path) == []


def test_a_wrong_authority_key_is_told_the_file_is_not_for_it(
    exporting_factory: Factory,
    authority_keys: AuthorityKeys,
    outsider: Outsider,
    tmp_path: Path,
    verify: Verify,
) -> None:
    delivered = deliver(exporting_factory, authority_keys, tmp_path / "received")
    out = tmp_path / "DE.xml"
    summary, error = verify(delivered.file, "--authority-key", outsider.key_path, "--out", out)
    assert error is not None and "not encrypted for this key" in error
    assert summary["ok"] is False
    # The file itself is intact: its digest still matches the manifest.
    assert summary["file_sha256"] == delivered.manifest["file"]["sha256"]
    assert summary["manifest"]["mismatches"] == []
    assert not out.exists() and leftovers(tmp_path) == []


def test_a_certificate_that_is_not_the_keys_is_refused(
    exporting_factory: Factory,
    authority_keys: AuthorityKeys,
    outsider: Outsider,
    tmp_path: Path,
    verify: Verify,
) -> None:
    delivered = deliver(exporting_factory, authority_keys, tmp_path)
    summary, error = verify(
        delivered.file,
        *key_arguments(authority_keys),
        "--authority-certificate",
        outsider.certificate_path,
    )
    assert error is not None and "does not belong to the authority key" in error
    assert summary["ok"] is False


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("records", 4),
        ("file.sha256", "0" * 64),
        ("content.sha256", "f" * 64),
        ("country", "FR"),
        ("platform_certificate_sha256", "AA:BB"),
        ("signed_at", "2001-01-01T00:00:00+00:00"),
    ],
)
def test_a_manifest_that_does_not_match_fails_naming_the_field(
    exporting_factory: Factory,
    authority_keys: AuthorityKeys,
    tmp_path: Path,
    verify: Verify,
    field: str,
    value: object,
) -> None:
    delivered = deliver(exporting_factory, authority_keys, tmp_path / "received")
    manifest = delivered.manifest
    *parents, last = field.split(".")
    target = manifest
    for part in parents:
        target = target[part]
    target[last] = value
    delivered.manifest_path.write_text(json.dumps(manifest))
    out = tmp_path / "DE.xml"
    summary, error = verify(delivered.file, *key_arguments(authority_keys), "--out", out)
    assert error is not None and "does not match its manifest" in error and f"{field}:" in error
    assert summary["ok"] is False and summary["xsd_valid"] is True
    assert [m.split(":")[0] for m in summary["manifest"]["mismatches"]] == [field]
    assert not out.exists() and leftovers(tmp_path) == []


def test_a_manifest_is_optional_unless_named(
    exporting_factory: Factory, authority_keys: AuthorityKeys, tmp_path: Path, verify: Verify
) -> None:
    delivered = deliver(exporting_factory, authority_keys, tmp_path)
    # The platform's own names: <job>.xml.p7m with <job>.manifest.json.
    stored = delivered.file.rename(tmp_path / "17.xml.p7m")
    delivered.manifest_path.rename(tmp_path / "17.manifest.json")
    summary, error = verify(stored, *key_arguments(authority_keys))
    assert error is None and summary["manifest"]["checked"] is True
    (tmp_path / "17.manifest.json").unlink()
    summary, error = verify(stored, *key_arguments(authority_keys))
    assert error is None and summary["ok"] is True
    assert summary["manifest"]["checked"] is False and "No manifest found" in summary["manifest"]["note"]
    summary, error = verify(stored, *key_arguments(authority_keys), "--manifest", tmp_path / "none.json")
    assert error is not None and "manifest" in error and "cannot be read" in error
    (tmp_path / "broken.json").write_text("{not json")
    summary, error = verify(stored, *key_arguments(authority_keys), "--manifest", tmp_path / "broken.json")
    assert error is not None and "is not JSON" in error


def test_a_file_signed_under_another_platform_certificate_fails(
    exporting_factory: Factory,
    authority_keys: AuthorityKeys,
    outsider: Outsider,
    tmp_path: Path,
    verify: Verify,
) -> None:
    delivered = deliver(exporting_factory, authority_keys, tmp_path / "received")
    out = tmp_path / "DE.xml"
    summary, error = verify(
        delivered.file,
        *key_arguments(authority_keys),
        "--platform-certificate",
        outsider.certificate_path,
        "--out",
        out,
    )
    assert error is not None and "signed by another certificate" in error
    assert summary["platform_certificate_sha256"] == certificate_fingerprint(
        certificate_load(outsider.certificate_path.read_bytes())
    )
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (os.urandom(5000), "not a valid export file"),
        (b"", "The file is empty"),
        (b"<?xml version='1.0'?><supportForm/>", "not a valid export file"),
    ],
    ids=["random", "empty", "plain-xml"],
)
def test_a_file_that_is_not_an_export_fails_clearly(
    authority_keys: AuthorityKeys, tmp_path: Path, verify: Verify, content: bytes, message: str
) -> None:
    file = tmp_path / "BE.xml.p7m"
    file.write_bytes(content)
    out = tmp_path / "BE.xml"
    summary, error = verify(file, *key_arguments(authority_keys), "--out", out)
    assert error is not None and message in error
    assert summary["ok"] is False and summary["file_bytes"] == len(content)
    assert not out.exists() and leftovers(tmp_path) == []


def test_missing_inputs_are_named(authority_keys: AuthorityKeys, tmp_path: Path, verify: Verify) -> None:
    summary, error = verify(tmp_path / "none.xml.p7m", *key_arguments(authority_keys))
    assert error is not None and "does not exist" in error and summary["ok"] is False
    (tmp_path / "BE.xml.p7m").write_bytes(b"x")
    summary, error = verify(tmp_path / "BE.xml.p7m", "--authority-key", tmp_path / "none.key")
    assert error is not None and "authority key" in error and "cannot be read" in error
    summary, error = verify(tmp_path / "BE.xml.p7m", "--authority-key", authority_keys.certificate_path)
    assert error is not None and "authority key" in error and "cannot be used" in error


def test_the_command_runs_without_database_or_redis_and_fails_without_a_traceback(
    exporting_factory: Factory, authority_keys: AuthorityKeys, tmp_path: Path
) -> None:
    """As an authority runs it: manage.py with services that do not exist (nothing may connect)."""
    delivered = deliver(exporting_factory, authority_keys, tmp_path / "received")
    shutil.copy(settings.EXPORT_SIGNING_CERTIFICATE_FILE, tmp_path / "platform.crt")
    environment = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": "postgres://unused@127.0.0.1:1/unused",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "ECI_DATA_DIR": str(tmp_path / "data"),
    }
    command = [
        sys.executable,
        str(REPOSITORY / "manage.py"),
        "verify_export",
        "--authority-key",
        str(authority_keys.key_path),
        "--platform-certificate",
        str(tmp_path / "platform.crt"),
    ]
    result = subprocess.run(
        [*command, str(delivered.file)], env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ok"] is True

    (tmp_path / "garbage.xml.p7m").write_bytes(os.urandom(1000))
    result = subprocess.run(
        [*command, str(tmp_path / "garbage.xml.p7m")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert json.loads(result.stdout)["ok"] is False
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("CommandError: The file is not a valid")
