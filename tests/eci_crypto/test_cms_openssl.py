"""Export files and stock OpenSSL: the commands documented in eci_crypto/cms/__init__.py (they go into the
authorities' guide) decrypt and verify what the platform writes, also after its certificate expired,
OpenSSL prints the same fingerprint, and files OpenSSL signs and encrypts are read. No database needed."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from eci_crypto import cms as export_cms
from eci_crypto.certificates import certificate_fingerprint, self_signed_certificate_create
from tests.eci_crypto.parties import XML, Party, export_bytes, export_read

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")


# Stock OpenSSL -------------------------------------------------------------------------------------------


def documented_openssl_commands() -> list[str]:
    """The commands of the module docstring (they go into the README), continuation lines joined."""
    text = (export_cms.__doc__ or "").replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip().startswith("openssl cms ")]


@needs_openssl
def test_openssl_decrypts_and_verifies_with_the_documented_commands(
    platform: Party, authority: Party, stranger: Party, tmp_path: Path
) -> None:
    commands = documented_openssl_commands()
    assert [command.split()[2] for command in commands] == ["-decrypt", "-verify"]
    content = XML * 5000  # several chunks
    (tmp_path / "BE.xml.p7m").write_bytes(export_bytes([content], platform, authority))
    platform.save(tmp_path, "platform")
    authority.save(tmp_path, "authority")

    for command in commands:
        subprocess.run(shlex.split(command), cwd=tmp_path, check=True, capture_output=True)
    assert (tmp_path / "BE.xml").read_bytes() == content

    # The verification pins the platform's certificate: another one as the trust anchor fails.
    stranger.save(tmp_path, "platform")
    (tmp_path / "BE.xml").unlink()
    result = subprocess.run(shlex.split(commands[1]), cwd=tmp_path, capture_output=True)
    assert result.returncode != 0
    assert b"certificate verify error" in result.stderr


@needs_openssl
def test_openssl_verifies_after_the_platform_certificate_expired_with_no_check_time(
    authority: Party, tmp_path: Path
) -> None:
    expired = Party(*self_signed_certificate_create("Expired platform (test)", days=0))
    (tmp_path / "BE.xml.p7m").write_bytes(export_bytes([XML], expired, authority))
    expired.save(tmp_path, "platform")
    authority.save(tmp_path, "authority")
    decrypt, verify = (shlex.split(command) for command in documented_openssl_commands())
    subprocess.run(decrypt, cwd=tmp_path, check=True, capture_output=True)

    result = subprocess.run(verify, cwd=tmp_path, capture_output=True)
    assert result.returncode != 0
    assert b"certificate has expired" in result.stderr
    subprocess.run([*verify, "-no_check_time"], cwd=tmp_path, check=True, capture_output=True)
    assert (tmp_path / "BE.xml").read_bytes() == XML


@needs_openssl
def test_openssl_prints_the_same_fingerprint(platform: Party, tmp_path: Path) -> None:
    platform.save(tmp_path, "platform")
    result = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", "platform.crt"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    )
    assert result.stdout.strip().split("=", 1)[1] == certificate_fingerprint(platform.certificate)


@needs_openssl
@pytest.mark.parametrize("streamed", [False, True], ids=["definite-lengths", "openssl-stream"])
def test_files_signed_and_encrypted_by_openssl_are_read(
    platform: Party, authority: Party, tmp_path: Path, streamed: bool
) -> None:
    platform.save(tmp_path, "platform")
    authority.save(tmp_path, "authority")
    content = XML * 3000
    (tmp_path / "export.xml").write_bytes(content)
    stream = ["-stream"] if streamed else []
    sign = "-sign -binary -nodetach -md sha256 -in export.xml -signer platform.crt -inkey platform.key"
    encrypt = (
        "-encrypt -binary -aes-256-gcm -in signed.der -recip authority.crt -keyopt rsa_padding_mode:oaep"
    )
    encrypt += " -keyopt rsa_oaep_md:sha256 -keyopt rsa_mgf1_md:sha256"
    subprocess.run(
        ["openssl", "cms", *sign.split(), *stream, "-outform", "DER", "-out", "signed.der"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["openssl", "cms", *encrypt.split(), *stream, "-outform", "DER", "-out", "export.p7m"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    verified, decrypted = export_read((tmp_path / "export.p7m").read_bytes(), authority, platform)
    assert decrypted == content
    assert verified.signer_certificate == platform.certificate
