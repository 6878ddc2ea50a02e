"""Export files (eci_crypto/cms/): signed and encrypted CMS written and read as streams, that stock OpenSSL
decrypts and verifies, that fail clearly when altered or not ours, and that keep memory flat. Also the
certificate helpers (eci_crypto/certificates.py). No database needed."""

from __future__ import annotations

import datetime
import hashlib
import io
import random
import re
import shlex
import shutil
import subprocess
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from eci_crypto import cms as export_cms
from eci_crypto.certificates import (
    CertificateError,
    SigningIdentity,
    certificate_fingerprint,
    certificate_load,
    private_key_load,
    self_signed_certificate_create,
    signing_identity_from_files,
    signing_identity_load,
)
from eci_crypto.cms.reader import (
    ExportFileError,
    VerifiedExport,
    auth_enveloped_data_decrypt,
    export_file_read,
    signed_data_read,
)
from eci_crypto.cms.writer import AuthEnvelopedDataWriter, ExportFileWriter, ExportSummary, SignedDataWriter

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")


@dataclass(frozen=True)
class Party:
    private_key_pem: bytes
    certificate_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return certificate_load(self.certificate_pem)

    @property
    def private_key(self) -> rsa.RSAPrivateKey:
        return private_key_load(self.private_key_pem)

    @property
    def identity(self) -> SigningIdentity:
        return signing_identity_load(self.private_key_pem, self.certificate_pem)

    def save(self, folder: Path, name: str) -> None:
        (folder / f"{name}.key").write_bytes(self.private_key_pem)
        (folder / f"{name}.crt").write_bytes(self.certificate_pem)


# RSA 3072 key generation takes a while: once per module.
@pytest.fixture(scope="module")
def platform() -> Party:
    return Party(*self_signed_certificate_create("ECI platform export signing (test)"))


@pytest.fixture(scope="module")
def authority() -> Party:
    return Party(*self_signed_certificate_create("Competent authority BE (test)"))


@pytest.fixture(scope="module")
def stranger() -> Party:
    return Party(*self_signed_certificate_create("Someone else (test)"))


class CountingSink:
    """Discards what it is given, counting it (a stand-in for a pipe or an upload)."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


def export_bytes(content_pieces: Iterator[bytes] | list[bytes], signer: Party, recipient: Party) -> bytes:
    output = io.BytesIO()
    with ExportFileWriter(output, signer.identity, recipient.certificate) as writer:
        for piece in content_pieces:
            writer.write(piece)
    return output.getvalue()


def export_read(data: bytes, recipient: Party, expected_signer: Party | None) -> tuple[VerifiedExport, bytes]:
    sink = io.BytesIO()
    verified = export_file_read(
        io.BytesIO(data),
        sink,
        recipient_key=recipient.private_key,
        expected_signer=expected_signer.certificate if expected_signer else None,
    )
    return verified, sink.getvalue()


def flipped(data: bytes, index: int) -> bytes:
    altered = bytearray(data)
    altered[index] ^= 0x01
    return bytes(altered)


XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<supportForm><forCountry>BE</forCountry>'
    b"<signatures><signature><value><![CDATA[Zo\xc3\xab \r\nD'Hondt\r]]></value></signature></signatures>"
    b"</supportForm>\n"
)


# Round trips ---------------------------------------------------------------------------------------------


def test_a_small_file_round_trips_with_its_summary(platform: Party, authority: Party) -> None:
    output = io.BytesIO()
    writer = ExportFileWriter(output, platform.identity, authority.certificate)
    assert writer.write(XML) == len(XML)
    summary = writer.close()
    data = output.getvalue()

    assert summary == ExportSummary(
        content_bytes=len(XML),
        content_sha256=hashlib.sha256(XML).hexdigest(),
        file_bytes=len(data),
        file_sha256=hashlib.sha256(data).hexdigest(),
        signing_time=summary.signing_time,
        signer_fingerprint=certificate_fingerprint(platform.certificate),
        recipient_fingerprint=certificate_fingerprint(authority.certificate),
    )
    assert abs(summary.signing_time - datetime.datetime.now(datetime.UTC)) < datetime.timedelta(minutes=1)
    assert writer.close() is summary  # closing twice is harmless

    verified, content = export_read(data, authority, expected_signer=platform)
    assert content == XML
    assert verified.signer_fingerprint == summary.signer_fingerprint
    assert verified.signer_certificate == platform.certificate
    assert verified.signing_time == summary.signing_time
    assert (verified.content_bytes, verified.content_sha256) == (len(XML), summary.content_sha256)


def test_empty_content_round_trips(platform: Party, authority: Party) -> None:
    verified, content = export_read(export_bytes([], platform, authority), authority, platform)
    assert content == b""
    assert verified.content_sha256 == hashlib.sha256(b"").hexdigest()


def test_megabytes_in_chunks_of_every_size_round_trip(platform: Party, authority: Party) -> None:
    randomness = random.Random(788)
    pool = randomness.randbytes(2 * 1024 * 1024)
    pieces: list[bytes] = []
    while sum(map(len, pieces)) < 6 * 1024 * 1024:
        if randomness.random() < 0.01:
            size = randomness.randint(64 * 1024, 2 * 1024 * 1024)  # a few large ones, some over a chunk
        else:
            size = randomness.randint(0, 300)  # mostly small writes, empty ones too
        start = randomness.randint(0, len(pool) - size)
        pieces.append(pool[start : start + size])
    content = b"".join(pieces)

    output = io.BytesIO()
    with ExportFileWriter(output, platform.identity, authority.certificate) as writer:
        for piece in pieces:
            writer.write(memoryview(piece) if len(piece) % 2 else piece)
    data = output.getvalue()
    assert writer.summary is not None
    assert writer.summary.file_sha256 == hashlib.sha256(data).hexdigest()
    assert writer.summary.file_bytes == len(data)

    verified, decrypted = export_read(data, authority, platform)
    assert decrypted == content
    assert verified.content_sha256 == hashlib.sha256(content).hexdigest()


def test_lxml_writes_its_xml_straight_into_the_writer(platform: Party, authority: Party) -> None:
    output = io.BytesIO()
    writer = ExportFileWriter(output, platform.identity, authority.certificate)
    with etree.xmlfile(writer, encoding="UTF-8") as xml:
        xml.write_declaration()
        with xml.element("supportForm"):
            for number in range(3000):
                signature = etree.Element("signature")
                etree.SubElement(signature, "signatureIdentifier").text = f"id-{number}"
                xml.write(signature)
    writer.close()

    _, content = export_read(output.getvalue(), authority, platform)
    document = etree.fromstring(content)
    assert len(document) == 3000
    assert document[2999].findtext("signatureIdentifier") == "id-2999"


def test_the_file_layers_can_be_read_one_by_one(platform: Party, authority: Party) -> None:
    data = export_bytes([XML], platform, authority)
    signed = b"".join(auth_enveloped_data_decrypt(io.BytesIO(data), authority.private_key))
    assert signed.startswith(b"\x30\x80\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02")  # BER SignedData
    sink = io.BytesIO()
    verified = signed_data_read(io.BytesIO(signed), sink, expected_signer=platform.certificate)
    assert sink.getvalue() == XML
    assert verified.signer_fingerprint == certificate_fingerprint(platform.certificate)


def test_writing_after_close_and_after_a_failure_is_refused(platform: Party, authority: Party) -> None:
    writer = ExportFileWriter(io.BytesIO(), platform.identity, authority.certificate)
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"more")

    output = io.BytesIO()
    with (
        pytest.raises(RuntimeError),
        ExportFileWriter(output, platform.identity, authority.certificate) as failing,
    ):
        failing.write(XML)
        raise RuntimeError("the database went away")
    assert failing.closed and failing.summary is None
    with pytest.raises(ExportFileError, match="ends too early"):  # an abandoned file never verifies
        export_read(output.getvalue(), authority, platform)


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


# Failures ------------------------------------------------------------------------------------------------


def test_another_key_cannot_decrypt(platform: Party, authority: Party, stranger: Party) -> None:
    data = export_bytes([XML], platform, authority)
    with pytest.raises(ExportFileError, match="not encrypted for this key") as failure:
        export_read(data, stranger, platform)
    assert failure.value.__cause__ is None or isinstance(failure.value.__cause__, ExportFileError)


def test_refused_for_a_file_that_is_not_an_export(authority: Party) -> None:
    for garbage, problem in (
        (b"", "empty"),
        (b"<?xml version='1.0'?><supportForm/>", "ContentInfo expected"),
        (b"\x30\x80\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02\xa0\x80", "signed but not encrypted"),
    ):
        with pytest.raises(ExportFileError, match=problem):
            export_file_read(
                io.BytesIO(garbage), None, recipient_key=authority.private_key, expected_signer=None
            )


@pytest.mark.parametrize("where", ["first-chunk", "middle", "last-chunk", "tag"])
def test_an_altered_ciphertext_byte_fails_the_tag(platform: Party, authority: Party, where: str) -> None:
    data = export_bytes([XML * 2000], platform, authority)  # about 400 KB: several chunks
    aes_256_gcm = bytes.fromhex("060960864801650304012e")
    encrypted_content = data.index(b"\xa0\x80", data.index(aes_256_gcm))
    # The end of the file: ... mac (04 10 + 16 bytes), then three end-of-contents (6 bytes).
    index = {
        # [0] 80, then the first chunk's header (04 83 + 3 length bytes), then the plaintext's BER headers
        "first-chunk": encrypted_content + 2 + 5 + 3,
        "middle": len(data) // 2,
        "last-chunk": len(data) - 6 - 18 - 4 - 100,
        "tag": len(data) - 6 - 5,
    }[where]
    sink = io.BytesIO()
    with pytest.raises(ExportFileError, match="altered or damaged: its authentication tag"):
        export_file_read(
            io.BytesIO(flipped(data, index)),
            sink,
            recipient_key=authority.private_key,
            expected_signer=platform.certificate,
        )


def test_a_truncated_file_fails(platform: Party, authority: Party) -> None:
    data = export_bytes([XML * 100], platform, authority)
    with pytest.raises(ExportFileError, match="ends too early"):
        export_read(data[:-30], authority, platform)


def signed_then_encrypted(signed: bytes, recipient: Party) -> bytes:
    """Encrypts a (possibly altered) SignedData file properly, so that only its signature can fail."""
    output = io.BytesIO()
    envelope = AuthEnvelopedDataWriter(output, recipient.certificate)
    envelope.write(signed)
    envelope.close()
    return output.getvalue()


def signed_bytes(content: bytes, signer: Party) -> bytes:
    output = io.BytesIO()
    writer = SignedDataWriter(output, signer.identity)
    writer.write(content)
    writer.close()
    return output.getvalue()


def test_altered_signed_content_fails_the_digest(platform: Party, authority: Party) -> None:
    signed = signed_bytes(XML, platform)
    index = signed.index(b"forCountry")
    with pytest.raises(ExportFileError, match="content does not match its signature"):
        export_read(signed_then_encrypted(flipped(signed, index), authority), authority, platform)


def test_an_altered_signature_fails(platform: Party, authority: Party) -> None:
    signed = signed_bytes(XML, platform)
    # The signature's 384 bytes end just before the three end-of-contents.
    with pytest.raises(ExportFileError, match="signature is invalid"):
        export_read(
            signed_then_encrypted(flipped(signed, len(signed) - 6 - 100), authority), authority, platform
        )


def test_altered_signed_attributes_fail(platform: Party, authority: Party) -> None:
    signed = signed_bytes(XML, platform)
    signing_time_oid = bytes.fromhex("06092a864886f70d010905")
    index = signed.index(signing_time_oid) + len(signing_time_oid) + 6  # inside the UTCTime
    with pytest.raises(ExportFileError, match="signature is invalid"):
        export_read(signed_then_encrypted(flipped(signed, index), authority), authority, platform)


def test_a_file_signed_by_another_key_fails_against_the_platform_certificate(
    platform: Party, authority: Party, stranger: Party
) -> None:
    data = export_bytes([XML], stranger, authority)
    with pytest.raises(ExportFileError, match=r"signed by another certificate \(CN=Someone else") as failure:
        export_read(data, authority, platform)
    assert certificate_fingerprint(platform.certificate) in str(failure.value)

    # Without a pinned certificate the file still proves its integrity, and says who signed it.
    verified, content = export_read(data, authority, expected_signer=None)
    assert content == XML
    assert verified.signer_fingerprint == certificate_fingerprint(stranger.certificate)


def test_a_signature_that_swaps_the_certificate_fails(
    platform: Party, authority: Party, stranger: Party
) -> None:
    """Signed by the stranger, but carrying the platform's certificate: the signature cannot verify."""
    stranger_signs_as_platform = SigningIdentity(
        private_key=stranger.private_key, certificate=platform.certificate
    )
    output = io.BytesIO()
    writer = SignedDataWriter(output, stranger_signs_as_platform)
    writer.write(XML)
    writer.close()
    with pytest.raises(ExportFileError, match="signature is invalid"):
        export_read(signed_then_encrypted(output.getvalue(), authority), authority, platform)


# Memory and speed ----------------------------------------------------------------------------------------


def test_writing_200_megabytes_keeps_memory_flat(platform: Party, authority: Party) -> None:
    identity, recipient = platform.identity, authority.certificate
    record = (XML * 100)[: 16 * 1024]
    total = 200 * 1024 * 1024
    sink = CountingSink()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        started = time.perf_counter()
        with ExportFileWriter(sink, identity, recipient) as writer:
            for _ in range(total // len(record)):
                writer.write(record)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert writer.summary is not None and writer.summary.content_bytes == total
    assert sink.size == writer.summary.file_bytes > total
    assert peak < 20 * 1024 * 1024, f"peak Python allocation {peak / 1e6:.1f} MB"
    assert elapsed < 10


def test_reading_keeps_memory_flat(platform: Party, authority: Party, tmp_path: Path) -> None:
    path = tmp_path / "BE.xml.p7m"
    record = (XML * 100)[:10_000]
    total_records = 5_000  # 50 MB
    with path.open("wb") as output, ExportFileWriter(output, platform.identity, authority.certificate) as w:
        for _ in range(total_records):
            w.write(record)
    recipient_key, expected = authority.private_key, platform.certificate
    sink = CountingSink()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        with path.open("rb") as source:
            verified = export_file_read(source, sink, recipient_key=recipient_key, expected_signer=expected)
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert verified.content_bytes == sink.size == total_records * len(record)
    assert peak < 20 * 1024 * 1024, f"peak Python allocation {peak / 1e6:.1f} MB"


# Certificates --------------------------------------------------------------------------------------------


def rsa_certificate_pem(key_size: int) -> bytes:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    return certificate_pem_for(private_key)


def certificate_pem_for(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(private_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def test_certificates_load_from_pem_or_der_and_have_an_openssl_style_fingerprint(platform: Party) -> None:
    certificate = certificate_load(platform.certificate_pem)
    assert certificate_load(certificate.public_bytes(serialization.Encoding.DER)) == certificate
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", certificate_fingerprint(certificate))
    assert certificate.public_key().key_size == 3072  # type: ignore[union-attr]


def test_unusable_certificates_are_refused_clearly() -> None:
    with pytest.raises(CertificateError, match=r"not an X\.509 certificate"):
        certificate_load(b"-----BEGIN CERTIFICATE-----\nbm9uc2Vuc2U=\n-----END CERTIFICATE-----\n")
    with pytest.raises(CertificateError, match=r"not an X\.509 certificate"):
        certificate_load(b"\x00garbage")
    with pytest.raises(CertificateError, match="2048 bits; at least 3072"):
        certificate_load(rsa_certificate_pem(2048))
    with pytest.raises(CertificateError, match="not RSA"):
        certificate_load(certificate_pem_for(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(CertificateError, match="at least 3072"):
        self_signed_certificate_create("too weak", key_size=2048)


def test_the_signing_identity_loads_from_files_and_must_match(
    platform: Party, stranger: Party, tmp_path: Path
) -> None:
    platform.save(tmp_path, "platform")
    identity = signing_identity_from_files(tmp_path / "platform.key", tmp_path / "platform.crt")
    assert identity.fingerprint == certificate_fingerprint(platform.certificate)
    assert "PRIVATE" not in repr(identity)
    with pytest.raises(CertificateError, match="does not belong to the certificate"):
        signing_identity_load(stranger.private_key_pem, platform.certificate_pem)
    with pytest.raises(CertificateError, match="not a PEM private key"):
        private_key_load(b"-----BEGIN PRIVATE KEY-----\nbm9uc2Vuc2U=\n-----END PRIVATE KEY-----\n")
    encrypted = platform.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    assert private_key_load(encrypted, b"secret").key_size == 3072
    with pytest.raises(CertificateError, match="cannot be opened"):
        private_key_load(encrypted)
