"""Helpers of the export file tests: a party (a key pair with its certificate), an export file written
from pieces of content, read back with its verification, and a small piece of export XML."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from eci_crypto.certificates import SigningIdentity, certificate_load, private_key_load, signing_identity_load
from eci_crypto.cms.reader import VerifiedExport, export_file_read
from eci_crypto.cms.writer import ExportFileWriter


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


XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<supportForm><forCountry>BE</forCountry>'
    b"<signatures><signature><value><![CDATA[Zo\xc3\xab \r\nD'Hondt\r]]></value></signature></signatures>"
    b"</supportForm>\n"
)
