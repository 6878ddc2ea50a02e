"""The verification of an export file, as its competent authority runs it: decrypt the file with the
authority's private key, check the AES-GCM tag and the platform's CMS signature, validate the XML against
the published XSD while it streams by, count the statements and compare everything with the manifest.

Needs no settings, no database and no Redis (an authority has none of them). The XML is unverified until
the whole file has been read (GCM authenticates at the very end), so `out` is written through a private
temporary file next to the target that is renamed into place only when every check passed. Messages name
positions, element names, counts and digests, never a value from the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from eci_crypto.certificates import (
    CertificateError,
    certificate_fingerprint,
    certificate_load,
    private_key_load,
)
from eci_crypto.cms.reader import ExportFileError, export_file_read
from exports.verification.manifest import manifest_load, manifest_mismatches
from exports.verification.report import VerificationRefusedError, VerificationReport, refuse
from exports.verification.xml_check import XmlCheck

_READ_SIZE = 1024 * 1024
_PARTIAL_SUFFIX = ".partial"
_PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"

PathArgument = str | os.PathLike[str]


def export_file_verify(
    file: PathArgument,
    *,
    authority_key: PathArgument,
    key_password_file: PathArgument | None = None,
    authority_certificate: PathArgument | None = None,
    platform_certificate: PathArgument | None = None,
    manifest: PathArgument | None = None,
    out: PathArgument | None = None,
    platform_certificate_default: Callable[[], x509.Certificate] | None = None,
) -> VerificationReport:
    """Verifies the export file `file` and returns the report, whose `error` is None when every check
    passed and is otherwise the one line saying what failed (nothing is raised for a refused file).

    authority_key: the authority's RSA private key (PEM), encrypted if key_password_file (a file holding
    the password on one line) is given. authority_certificate: the authority's certificate (PEM), to
    compare its fingerprint with the manifest's; by default the one in the key file, if any.
    platform_certificate: the platform's export-signing certificate as published (PEM); when not given,
    platform_certificate_default() is used (it may raise VerificationRefusedError), and without it the
    file is refused. manifest: by default the file's `.manifest.json` sibling, if there is one. out: where
    the verified XML goes (mode 0600), only when every check passed."""
    report = VerificationReport(file=Path(file))
    try:
        _verify(
            report,
            authority_key=os.fspath(authority_key),
            key_password_file=_given(key_password_file),
            authority_certificate=_given(authority_certificate),
            platform_certificate=_given(platform_certificate),
            manifest=_given(manifest),
            out=_given(out),
            platform_certificate_default=platform_certificate_default,
        )
    except VerificationRefusedError as refusal:
        report.error = " ".join(str(refusal).split())  # one line
    return report


def _given(value: PathArgument | None) -> str | None:
    """The path as given (messages quote it as typed), None for none or an empty one."""
    return os.fspath(value) if value else None


class _HashingReader:
    """The export file as read: its SHA-256 and size, for the manifest (which hashes the whole file)."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self.hash = hashlib.sha256()
        self.bytes = 0

    def read(self, size: int, /) -> bytes:
        data = self._source.read(size)
        self.hash.update(data)
        self.bytes += len(data)
        return data

    def drain(self) -> None:
        """Reads what the verification left unread (it stops at the first fault), so that the file's
        digest is the whole file's and can still tell a damaged download from a wrong key."""
        while self.read(_READ_SIZE):
            pass


def _verify(
    report: VerificationReport,
    *,
    authority_key: str,
    key_password_file: str | None,
    authority_certificate: str | None,
    platform_certificate: str | None,
    manifest: str | None,
    out: str | None,
    platform_certificate_default: Callable[[], x509.Certificate] | None,
) -> None:
    file = report.file
    if not file.is_file():
        refuse(f"The export file {file} does not exist or is not a file.")
    recipient_key, key_bytes = _authority_key(authority_key, key_password_file)
    authority = _authority_certificate(authority_certificate, authority_key, key_bytes, recipient_key)
    if authority is not None:
        report.authority_certificate_sha256 = certificate_fingerprint(authority)
    platform = _platform_certificate(platform_certificate, platform_certificate_default)
    report.platform_certificate_sha256 = certificate_fingerprint(platform)
    manifest_data = manifest_load(report, manifest)
    out_path = Path(out) if out else None
    if out_path is not None:
        if not out_path.parent.is_dir():
            refuse(f"The folder of --out ({out_path.parent}) does not exist.")
        if out_path.exists() and out_path.resolve() == file.resolve():
            refuse("--out names the export file itself.")

    crypto_error: str | None = None
    with _output_file(out_path) as (output, publish):
        xml = report.xml = XmlCheck(output)
        try:
            with file.open("rb") as handle:
                source = _HashingReader(handle)
                try:
                    report.verified = export_file_read(
                        source, xml, recipient_key=recipient_key, expected_signer=platform
                    )
                except ExportFileError as error:
                    crypto_error = str(error)
                except Exception as error:  # the reader's own defect: no traceback, not its text
                    crypto_error = f"The file could not be read ({type(error).__name__})."
                source.drain()
                report.file_bytes = source.bytes
                report.file_sha256 = source.hash.hexdigest()
        except OSError as error:
            refuse(f"The export file {file} cannot be read: {error.strerror}.")
        if report.verified is not None:
            xml.finish()
        if manifest_data is not None:
            report.mismatches, report.not_compared = manifest_mismatches(manifest_data, report)
        if crypto_error is not None:
            refuse(crypto_error)
        if xml.output_error is not None:
            refuse(f"The XML could not be written to {out_path}: {xml.output_error}.")
        if xml.error is not None:
            refuse(xml.error)
        if report.mismatches:
            refuse(
                f"The file does not match its manifest ({report.manifest_path}): "
                + "; ".join(report.mismatches)
                + "."
            )
        if out_path is not None:
            publish()
            report.out = out_path


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        refuse(f"{what} ({path}) cannot be read: {error.strerror}.")


def _authority_key(path: str, password_file: str | None) -> tuple[rsa.RSAPrivateKey, bytes]:
    key_bytes = _read(path, "The authority key")
    password = None
    if password_file:
        password = _read(password_file, "The key password file").rstrip(b"\r\n")
    try:
        return private_key_load(key_bytes, password), key_bytes
    except CertificateError as error:
        refuse(f"The authority key ({path}) cannot be used: {error}")


def _public_der(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _authority_certificate(
    path: str | None, key_path: str, key_bytes: bytes, recipient_key: rsa.RSAPrivateKey
) -> x509.Certificate | None:
    """The authority's certificate, when given (or kept in the key file): it must belong to the key."""
    if path:
        data = _read(path, "The authority certificate")
    elif _PEM_CERTIFICATE in key_bytes:
        path, data = key_path, key_bytes
    else:
        return None
    try:
        certificate = certificate_load(data)
        public_key = certificate.public_key()
    except (CertificateError, ValueError) as error:
        refuse(f"The authority certificate ({path}) cannot be used: {error}")
    if not isinstance(public_key, rsa.RSAPublicKey) or _public_der(public_key) != _public_der(
        recipient_key.public_key()
    ):
        refuse(f"The authority certificate ({path}) does not belong to the authority key.")
    return certificate


def _platform_certificate(
    path: str | None, default: Callable[[], x509.Certificate] | None
) -> x509.Certificate:
    if path:
        try:
            return certificate_load(_read(path, "The platform certificate"))
        except CertificateError as error:
            refuse(f"The platform certificate ({path}) cannot be used: {error}")
    if default is None:
        refuse(
            "No platform certificate was given: pass the platform's published export-signing certificate "
            "with --platform-certificate."
        )
    return default()


@contextlib.contextmanager
def _output_file(out: Path | None) -> Iterator[tuple[BinaryIO | None, Any]]:
    """(a writable file or None, publish): a private temporary file next to `out` (mkstemp: mode 0600)
    that publish() renames to `out`; deleted when the block ends unpublished, whatever the reason."""
    if out is None:
        yield None, lambda: None
        return
    try:
        descriptor, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=_PARTIAL_SUFFIX)
    except OSError as error:
        refuse(f"No file can be created in the folder of --out ({out.parent}): {error.strerror}.")
    partial = Path(name)
    published = False
    handle = os.fdopen(descriptor, "wb")

    def publish() -> None:
        nonlocal published
        try:
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            os.replace(partial, out)
        except OSError as error:
            refuse(f"The verified XML could not be written to {out}: {error.strerror}.")
        published = True

    try:
        yield handle, publish
    finally:
        if not published:
            handle.close()
            partial.unlink(missing_ok=True)
