"""verify_export, the authorities' check of an export file, on real exports (export_request + export_run):
what it reports, what it refuses and how, that --out publishes only verified XML, that it needs no
database, and that the README's stock-tool commands give the same XML and fingerprints."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from lxml import etree
from pytest_django.plugin import DjangoDbBlocker

from eci_crypto.certificates import (
    certificate_fingerprint,
    certificate_load,
    private_key_load,
    self_signed_certificate_create,
)
from eci_crypto.cms.reader import export_file_read
from eci_crypto.cms.writer import ExportFileWriter
from exports.format import SCHEMA_PATH, export_schema
from exports.models import ExportJobState
from exports.services import export_request, export_run, platform_signing_identity
from exports.storage import export_storage
from exports.verification.xml_check import IDENTITY_CONSTRAINTS, streaming_schema
from tests.exports.conftest import AuthorityKeys, ExportingInitiative
from tests.exports.test_verify_export_cli import run_script

Factory = Callable[[dict[str, int]], ExportingInitiative]
REPOSITORY = Path(__file__).resolve().parents[2]
README = REPOSITORY / "docs" / "verifying-exports.md"
README_SECTION = "## How an authority verifies an export"
OPENSSL = shutil.which("openssl")


@dataclass(frozen=True)
class Delivered:
    """An export as an authority receives it: the file and its manifest in a folder of their own."""

    file: Path
    manifest_path: Path
    manifest: dict[str, Any]
    xml: bytes  # what the platform wrote, read back with the library (the reference)
    registration_number: str

    @property
    def folder(self) -> Path:
        return self.file.parent


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


def deliver(
    exporting_factory: Factory, keys: AuthorityKeys, folder: Path, country: str = "DE", count: int = 3
) -> Delivered:
    """A real export of `count` statements, copied from the storage as `<CC>.xml.p7m` and
    `<CC>.manifest.json` into `folder`."""
    exporting = exporting_factory({country: count})
    with exporting.initiative:
        (job,) = export_request(country=country, actor="organiser@example.org")
        export_run(job.pk)
        job.refresh_from_db()
    assert job.state == ExportJobState.DONE, job.error
    storage = export_storage()
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / f"{country}.xml.p7m"
    file.write_bytes(storage.read(job.object_key))
    manifest_path = folder / f"{country}.manifest.json"
    manifest_path.write_bytes(storage.read(job.manifest_key))
    xml = io.BytesIO()
    export_file_read(
        io.BytesIO(file.read_bytes()),
        xml,
        recipient_key=private_key_load(keys.private_key_pem),
        expected_signer=platform_signing_identity().certificate,
    )
    return Delivered(
        file=file,
        manifest_path=manifest_path,
        manifest=json.loads(manifest_path.read_bytes()),
        xml=xml.getvalue(),
        registration_number=exporting.initiative.registration_number,
    )


Verify = Callable[..., tuple[dict[str, Any], str | None]]


@pytest.fixture
def verify(django_db_blocker: DjangoDbBlocker) -> Verify:
    """Runs the command with every query refused (an authority has no database); returns its one JSON
    object and its error (None: success)."""

    def run(*arguments: str | Path) -> tuple[dict[str, Any], str | None]:
        stdout = io.StringIO()
        error = None
        with django_db_blocker.block():
            try:
                call_command("verify_export", *[str(argument) for argument in arguments], stdout=stdout)
            except CommandError as refusal:
                error = str(refusal)
        lines = stdout.getvalue().splitlines()
        assert len(lines) == 1, lines  # exactly one JSON object, success or not
        return json.loads(lines[0]), error

    return run


def key_arguments(keys: AuthorityKeys) -> list[str | Path]:
    return ["--authority-key", keys.key_path]


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".partial"))


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


# Signed and encrypted correctly, but not valid XML for the schema: written by hand with the platform's
# identity. SECRET stands for personal data, which no message may quote.
def _signed_xml(xml: bytes, keys: AuthorityKeys, path: Path) -> None:
    with path.open("wb") as output:
        writer = ExportFileWriter(output, platform_signing_identity(), certificate_load(keys.certificate_pem))
        writer.write(xml)
        writer.close()


def _repeated_first(pattern: bytes, xml: bytes) -> bytes:
    """The XML with the first match of pattern written twice in a row."""
    match = re.search(pattern, xml, flags=re.DOTALL)
    assert match is not None
    return xml[: match.end()] + match.group(0) + xml[match.end() :]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda xml: xml.replace(b"</supportForm>", b""), "not well-formed: ERR_TAG_NOT_FINISHED"),
        (lambda xml: xml[: xml.index(b"<signature>") + 200], "not well-formed"),
        (lambda xml: xml.replace(b"<signatures>", b"<signatures><unknown/>"), "at element unknown"),
        (
            lambda xml: re.sub(
                rb"<value>[^<]*</value>", b"<value>  </value>", xml, count=1
            ),  # a blank value: the pattern quotes it
            "SCHEMAV_CVC_PATTERN_VALID at element value",
        ),
        (
            lambda xml: re.sub(
                rb"<signatureIdentifier>[^<]*<", b"<signatureIdentifier>SECRET-NAME<", xml, count=1
            ),
            "at element signatureIdentifier",
        ),
        (lambda xml: xml.replace(b"<forCountry>DE<", b"<forCountry>SECRET<"), "at element forCountry"),
        (lambda xml: _repeated_first(rb"<property>.*?</property>", xml), "(onePropertyPerKey)"),
        (lambda xml: _repeated_first(rb"<group>.*?</group>", xml), "(oneGroupPerName)"),
    ],
    ids=[
        "unclosed",
        "truncated",
        "unknown-element",
        "blank-value",
        "bad-identifier",
        "bad-country",
        "repeated-key",
        "repeated-group",
    ],
)
def test_signed_xml_that_is_not_valid_fails_without_quoting_values(
    exporting_factory: Factory,
    authority_keys: AuthorityKeys,
    tmp_path: Path,
    verify: Verify,
    change: Callable[[bytes], bytes],
    expected: str,
) -> None:
    delivered = deliver(exporting_factory, authority_keys, tmp_path / "received")
    xml = change(delivered.xml.replace(b"Zo\xc3\xab \xc3\x98rsted", b"SECRET"))  # the contact person
    assert xml != delivered.xml and b"SECRET" in xml
    file = tmp_path / "DE.xml.p7m"
    _signed_xml(xml, authority_keys, file)
    out = tmp_path / "DE.xml"
    summary, error = verify(file, *key_arguments(authority_keys), "--out", out)
    assert error is not None and expected in error, error
    assert summary["ok"] is False and summary["xsd_valid"] is False
    assert "SECRET" not in json.dumps(summary) and "SECRET" not in error
    assert not out.exists() and leftovers(tmp_path) == []


def test_duplicate_statements_fail_the_schemas_uniqueness_check(
    exporting_factory: Factory, authority_keys: AuthorityKeys, tmp_path: Path, verify: Verify
) -> None:
    delivered = deliver(exporting_factory, authority_keys, tmp_path / "received")
    start = delivered.xml.index(b"<signature>")
    end = delivered.xml.index(b"</signature>") + len(b"</signature>\n")
    xml = delivered.xml[:end] + delivered.xml[start:end] + delivered.xml[end:]
    file = tmp_path / "DE.xml.p7m"
    _signed_xml(xml, authority_keys, file)
    summary, error = verify(file, *key_arguments(authority_keys))
    assert error is not None and "SCHEMAV_CVC_IDC (oneSignaturePerIdentifier)" in error
    assert "after 1 complete signature(s)" in error  # the copy of the first comes second
    assert summary["xsd_valid"] is False


def test_the_streaming_validation_leaves_out_exactly_the_constraints_checked_in_python() -> None:
    """libxml2 holds every identity constraint's table to the end (memory grows with the statements), so
    the command checks them itself: a new or renamed constraint in the XSD must be added there."""
    document = etree.parse(str(SCHEMA_PATH))
    xs = "{http://www.w3.org/2001/XMLSchema}"
    assert not list(document.iter(f"{xs}key", f"{xs}keyref"))
    assert {element.get("name") for element in document.iter(f"{xs}unique")} == IDENTITY_CONSTRAINTS
    assert streaming_schema() is not export_schema()


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
