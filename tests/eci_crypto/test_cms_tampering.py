"""Export files that must not be read: encrypted for another key, not an export at all, altered (the
ciphertext, the signed content, the signature, the signed attributes), truncated, or signed by another
key than the platform's. No database needed."""

from __future__ import annotations

import io

import pytest

from eci_crypto.certificates import SigningIdentity, certificate_fingerprint
from eci_crypto.cms.reader import ExportFileError, export_file_read
from eci_crypto.cms.writer import AuthEnvelopedDataWriter, SignedDataWriter
from tests.eci_crypto.parties import XML, Party, export_bytes, export_read


def flipped(data: bytes, index: int) -> bytes:
    altered = bytearray(data)
    altered[index] ^= 0x01
    return bytes(altered)


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
