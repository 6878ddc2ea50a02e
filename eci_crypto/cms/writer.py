"""Writing export files: the XML signed (CMS SignedData) and then encrypted to the authority (CMS
AuthEnvelopedData) as it streams through, holding at most about two chunks in memory. The layout is in the
package's docstring (eci_crypto/cms/__init__.py)."""

from __future__ import annotations

import datetime
import hashlib
import os
from dataclasses import dataclass

from asn1crypto import algos, cms, core
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from eci_crypto.certificates import SigningIdentity, certificate_fingerprint, certificate_rsa_key
from eci_crypto.cms.algorithms import (
    AES_256_KEY_SIZE,
    GCM_NONCE_SIZE,
    GCM_TAG_SIZE,
    SHA256_ALGORITHM,
    GcmParameters,
    asn1_certificate,
    issuer_and_serial_number,
)
from eci_crypto.cms.ber import (
    END_OF_CONTENTS,
    INDEFINITE_CONTEXT_0,
    INDEFINITE_OCTET_STRING,
    INDEFINITE_SEQUENCE,
    BinarySink,
    octet_string_header,
    write_all,
)

DEFAULT_CHUNK_SIZE = 64 * 1024


@dataclass(frozen=True)
class EnvelopeSummary:
    file_bytes: int
    file_sha256: str
    recipient_fingerprint: str


@dataclass(frozen=True)
class SignatureSummary:
    content_bytes: int
    content_sha256: str
    signing_time: datetime.datetime
    signer_fingerprint: str


@dataclass(frozen=True)
class ExportSummary:
    """What the manifest records of a written export file (hex digests, fingerprints as OpenSSL prints)."""

    content_bytes: int
    content_sha256: str
    file_bytes: int
    file_sha256: str
    signing_time: datetime.datetime
    signer_fingerprint: str
    recipient_fingerprint: str


class _ChunkingSink:
    """Gathers small writes into chunks of at least chunk_size bytes and cuts huge ones into chunk_size
    pieces, so the per-chunk work (framing, hashing, cipher calls) stays negligible and memory bounded."""

    def __init__(self, chunk_size: int) -> None:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        self._chunk_size = chunk_size
        self._pending = bytearray()
        self._closed = False

    def _chunk(self, data: bytes | memoryview) -> None:
        raise NotImplementedError

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        """Nothing to do: chunks go out when full, and a partial one only at close."""

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise ValueError("write to a closed export writer")
        size = len(data)
        view = memoryview(data).cast("B")
        if self._pending:
            room = self._chunk_size - len(self._pending)
            if size < room:
                self._pending += view
                return size
            self._pending += view[:room]
            self._chunk(bytes(self._pending))
            self._pending.clear()
            view = view[room:]
        remaining = len(view)
        if remaining < self._chunk_size:
            self._pending += view
        elif remaining <= 2 * self._chunk_size:
            self._chunk(view)
        else:
            for start in range(0, remaining, self._chunk_size):
                self._chunk(view[start : start + self._chunk_size])
        return size

    def _drain(self) -> None:
        if self._pending:
            self._chunk(bytes(self._pending))
            self._pending.clear()


class AuthEnvelopedDataWriter(_ChunkingSink):
    """Encrypts what is written to it into a CMS AuthEnvelopedData file for one recipient certificate,
    written through to output as it goes. close() writes the GCM tag and returns an EnvelopeSummary; it
    does not close output."""

    def __init__(
        self,
        output: BinarySink,
        recipient_certificate: x509.Certificate,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        super().__init__(chunk_size)
        recipient_key = certificate_rsa_key(recipient_certificate)
        self._output = output
        self._file_hash = hashlib.sha256()
        self._file_bytes = 0
        self._recipient_fingerprint = certificate_fingerprint(recipient_certificate)
        content_key = os.urandom(AES_256_KEY_SIZE)
        nonce = os.urandom(GCM_NONCE_SIZE)
        self._encryptor = Cipher(algorithms.AES(content_key), modes.GCM(nonce)).encryptor()
        oaep_parameters = algos.RSAESOAEPParams(
            {
                "hash_algorithm": {"algorithm": "sha256"},
                "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
            }
        )
        encrypted_key = recipient_key.encrypt(
            content_key,
            padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
        )
        recipient_infos = cms.RecipientInfos(
            [
                cms.RecipientInfo(
                    name="ktri",
                    value=cms.KeyTransRecipientInfo(
                        {
                            "version": "v0",
                            "rid": cms.RecipientIdentifier(
                                name="issuer_and_serial_number",
                                value=issuer_and_serial_number(recipient_certificate),
                            ),
                            "key_encryption_algorithm": {
                                "algorithm": "rsaes_oaep",
                                "parameters": oaep_parameters,
                            },
                            "encrypted_key": encrypted_key,
                        }
                    ),
                )
            ]
        )
        content_encryption_algorithm = algos.EncryptionAlgorithm(
            {
                "algorithm": "aes256_gcm",
                "parameters": GcmParameters({"aes_nonce": nonce, "aes_icvlen": GCM_TAG_SIZE}),
            }
        )
        self._emit(
            b"".join(
                (
                    INDEFINITE_SEQUENCE,  # ContentInfo
                    cms.ContentType("authenticated_enveloped_data").dump(),
                    INDEFINITE_CONTEXT_0,  # [0] EXPLICIT content
                    INDEFINITE_SEQUENCE,  # AuthEnvelopedData
                    core.Integer(0).dump(),  # version
                    recipient_infos.dump(),
                    INDEFINITE_SEQUENCE,  # authEncryptedContentInfo
                    cms.ContentType("data").dump(),
                    content_encryption_algorithm.dump(),
                    INDEFINITE_CONTEXT_0,  # [0] IMPLICIT encryptedContent, constructed
                )
            )
        )

    def _emit(self, data: bytes) -> None:
        write_all(self._output, data)
        self._file_hash.update(data)
        self._file_bytes += len(data)

    def _chunk(self, data: bytes | memoryview) -> None:
        ciphertext = self._encryptor.update(data)
        self._emit(octet_string_header(len(ciphertext)) + ciphertext)

    def close(self) -> EnvelopeSummary:
        if self._closed:
            raise ValueError("the export writer is already closed")
        self._drain()
        self._closed = True
        last = self._encryptor.finalize()  # GCM is a stream mode: nothing is held back
        if last:
            self._emit(octet_string_header(len(last)) + last)
        self._emit(
            b"".join(
                (
                    END_OF_CONTENTS,  # encryptedContent
                    END_OF_CONTENTS,  # authEncryptedContentInfo
                    core.OctetString(self._encryptor.tag).dump(),  # mac
                    END_OF_CONTENTS,  # AuthEnvelopedData
                    END_OF_CONTENTS,  # [0] EXPLICIT content
                    END_OF_CONTENTS,  # ContentInfo
                )
            )
        )
        return EnvelopeSummary(
            file_bytes=self._file_bytes,
            file_sha256=self._file_hash.hexdigest(),
            recipient_fingerprint=self._recipient_fingerprint,
        )


def _cms_time(moment: datetime.datetime) -> cms.Time:
    # RFC 5652 11.3: UTCTime for 1950 to 2049, GeneralizedTime otherwise.
    if 1950 <= moment.year < 2050:
        return cms.Time(name="utc_time", value=moment)
    return cms.Time(name="general_time", value=moment)


class SignedDataWriter(_ChunkingSink):
    """Signs what is written to it into a CMS SignedData file (content encapsulated), written through to
    output as it goes. close() writes the certificate and signature and returns a SignatureSummary; it does
    not close output."""

    def __init__(
        self, output: BinarySink, signer: SigningIdentity, *, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> None:
        super().__init__(chunk_size)
        certificate_rsa_key(signer.certificate)
        self._output = output
        self._signer = signer
        self._content_hash = hashlib.sha256()
        self._content_bytes = 0
        # The opening goes out with the first chunk, so the layer below sees no tiny writes.
        self._framing = b"".join(
            (
                INDEFINITE_SEQUENCE,  # ContentInfo
                cms.ContentType("signed_data").dump(),
                INDEFINITE_CONTEXT_0,  # [0] EXPLICIT content
                INDEFINITE_SEQUENCE,  # SignedData
                core.Integer(1).dump(),  # version: issuerAndSerialNumber and id-data
                cms.DigestAlgorithms([SHA256_ALGORITHM]).dump(),
                INDEFINITE_SEQUENCE,  # encapContentInfo
                cms.ContentType("data").dump(),
                INDEFINITE_CONTEXT_0,  # [0] EXPLICIT eContent
                INDEFINITE_OCTET_STRING,
            )
        )

    def _chunk(self, data: bytes | memoryview) -> None:
        self._content_hash.update(data)
        self._content_bytes += len(data)
        write_all(self._output, b"".join((self._framing, octet_string_header(len(data)), data)))
        self._framing = b""

    def close(self, signing_time: datetime.datetime | None = None) -> SignatureSummary:
        if self._closed:
            raise ValueError("the export writer is already closed")
        self._drain()
        self._closed = True
        moment = (signing_time or datetime.datetime.now(datetime.UTC)).replace(microsecond=0)
        content_digest = self._content_hash.digest()
        # DER, SET OF sorted (asn1crypto sorts on encoding): what RFC 5652 5.4 says the signature covers.
        signed_attributes = cms.CMSAttributes(
            [
                cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
                cms.CMSAttribute({"type": "signing_time", "values": [_cms_time(moment)]}),
                cms.CMSAttribute({"type": "message_digest", "values": [content_digest]}),
            ]
        )
        signature = self._signer.private_key.sign(
            signed_attributes.dump(), padding.PKCS1v15(), hashes.SHA256()
        )
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier(
                    name="issuer_and_serial_number",
                    value=issuer_and_serial_number(self._signer.certificate),
                ),
                "digest_algorithm": SHA256_ALGORITHM,
                "signed_attrs": signed_attributes,
                "signature_algorithm": {"algorithm": "rsassa_pkcs1v15", "parameters": core.Null()},
                "signature": signature,
            }
        )
        certificate = asn1_certificate(self._signer.certificate)
        write_all(
            self._output,
            b"".join(
                (
                    self._framing,  # still there when the content is empty
                    END_OF_CONTENTS,  # eContent OCTET STRING
                    END_OF_CONTENTS,  # [0] EXPLICIT eContent
                    END_OF_CONTENTS,  # encapContentInfo
                    cms.CertificateSet([certificate], implicit=0).dump(),
                    cms.SignerInfos([signer_info]).dump(),
                    END_OF_CONTENTS,  # SignedData
                    END_OF_CONTENTS,  # [0] EXPLICIT content
                    END_OF_CONTENTS,  # ContentInfo
                )
            ),
        )
        return SignatureSummary(
            content_bytes=self._content_bytes,
            content_sha256=self._content_hash.hexdigest(),
            signing_time=moment,
            signer_fingerprint=self._signer.fingerprint,
        )


class ExportFileWriter:
    """A writable file-like object for the export XML (e.g. for lxml's etree.xmlfile): signs it with the
    platform's identity, encrypts it to the authority's certificate and writes the file through to output,
    holding at most about two chunks in memory. close() finishes the file and returns an ExportSummary
    (kept as .summary); it does not close output. As a context manager, an exception abandons the file
    unfinished (no tag: it can never verify), to be deleted by the caller."""

    def __init__(
        self,
        output: BinarySink,
        signer: SigningIdentity,
        recipient_certificate: x509.Certificate,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        self._envelope = AuthEnvelopedDataWriter(output, recipient_certificate, chunk_size=chunk_size)
        self._signed = SignedDataWriter(self._envelope, signer, chunk_size=chunk_size)
        self._aborted = False
        self.summary: ExportSummary | None = None

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        """Nothing to do: chunks go out when full, and a partial one only at close."""

    @property
    def closed(self) -> bool:
        return self.summary is not None or self._aborted

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._aborted:
            raise ValueError("write to an abandoned export writer")
        return self._signed.write(data)

    def close(self) -> ExportSummary:
        if self.summary is not None:
            return self.summary
        if self._aborted:
            raise ValueError("the export writer was abandoned")
        signature = self._signed.close()
        envelope = self._envelope.close()
        self.summary = ExportSummary(
            content_bytes=signature.content_bytes,
            content_sha256=signature.content_sha256,
            file_bytes=envelope.file_bytes,
            file_sha256=envelope.file_sha256,
            signing_time=signature.signing_time,
            signer_fingerprint=signature.signer_fingerprint,
            recipient_fingerprint=envelope.recipient_fingerprint,
        )
        return self.summary

    def abort(self) -> None:
        """Stops without finishing the file; what was written cannot decrypt and must be deleted."""
        self._aborted = True

    def __enter__(self) -> ExportFileWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
