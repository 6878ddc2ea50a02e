"""Export files: the XML signed (CMS SignedData) and then encrypted to the authority (CMS AuthEnvelopedData),
written and read as streams, so memory stays flat at any size.

Layout of a file (BER; "indef" marks the parts written with indefinite length, before their size is known):

    ContentInfo (indef): id-ct-authEnvelopedData (RFC 5083)
      AuthEnvelopedData (indef), version 0
        recipientInfos: one KeyTransRecipientInfo, issuerAndSerialNumber of the authority's certificate,
                        RSAES-OAEP with SHA-256 and MGF1-SHA-256 (RFC 4055)
        authEncryptedContentInfo (indef): id-data, AES-256-GCM (12-byte nonce, 16-byte ICV; RFC 5084)
          encryptedContent [0] (indef): OCTET STRING chunks, the ciphertext of
            ContentInfo (indef): id-signedData (RFC 5652)
              SignedData (indef), version 1, digestAlgorithms {SHA-256}
                encapContentInfo (indef): id-data, eContent: constructed OCTET STRING (indef) of XML chunks
                certificates: the platform's export-signing certificate
                signerInfos: one SignerInfo, signed attributes contentType, signingTime and messageDigest,
                             RSA PKCS#1 v1.5 with SHA-256
        mac: the 16-byte GCM tag

The encrypted content is labelled id-data rather than id-signedData: the plaintext is a whole CMS file (a
ContentInfo), exactly what `openssl cms -sign | openssl cms -encrypt` makes, so `openssl cms -decrypt` writes
out a file that `openssl cms -verify` reads (and RFC 5083 would require authAttrs for any other type).

An authority decrypts and verifies a file with stock OpenSSL 3.0 (BER input is fine with -inform DER; the
self-signed platform certificate is its own trust anchor for -CAfile):

    openssl cms -decrypt -binary -inform DER -in BE.xml.p7m -inkey authority.key -recip authority.crt \\
        -out BE.xml.signed.p7m
    openssl cms -verify -binary -inform DER -in BE.xml.signed.p7m -CAfile platform.crt -out BE.xml

-CAfile pins the platform's certificate: check it first against the published fingerprint
(`openssl x509 -noout -fingerprint -sha256 -in platform.crt`). After that certificate has expired, the
second command fails with "certificate has expired": add -no_check_time to it (the signing time is in the
file: `openssl cms -cmsout -print -inform DER -in BE.xml.signed.p7m | grep -A2 signingTime`).

Reading (export_file_read) is a stream too. GCM authenticates only at the very end, and the signature can be
checked only after the content, so the XML given to the sink is UNVERIFIED until export_file_read returns:
whatever it wrote must be discarded when it raises (write to a temporary path; rename only on success).
Nothing decrypted is written anywhere but the caller's sink.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from exports.certificates import (
    CertificateError,
    SigningIdentity,
    certificate_fingerprint,
    certificate_rsa_key,
)

DEFAULT_CHUNK_SIZE = 64 * 1024
GCM_NONCE_SIZE = 12
GCM_TAG_SIZE = 16
AES_256_KEY_SIZE = 32

# The reader's bounds: how much it reads at a time, and the most it holds of one small structure.
_READ_SIZE = 256 * 1024
_STRUCTURE_LIMIT = 1024 * 1024
_NESTING_LIMIT = 32

# BER framing written by hand: asn1crypto encodes whole values only, and these headers go out before the
# length of what follows is known (X.690 8.1.3.6: length octet 0x80, closed by two zero octets).
_INDEFINITE_SEQUENCE = b"\x30\x80"
_INDEFINITE_CONTEXT_0 = b"\xa0\x80"  # [0] EXPLICIT content, and the [0] IMPLICIT encryptedContent
_INDEFINITE_OCTET_STRING = b"\x24\x80"  # constructed OCTET STRING: a series of primitive OCTET STRINGs
_END_OF_CONTENTS = b"\x00\x00"

# Identifier octets read back: the class and constructed bits (the top three), with the tag number.
_UNIVERSAL = 0x00
_UNIVERSAL_CONSTRUCTED = 0x20
_CONTEXT = 0x80
_CONTEXT_CONSTRUCTED = 0xA0
_TAG_INTEGER = 2
_TAG_OCTET_STRING = 4
_TAG_OID = 6
_TAG_SEQUENCE = 16
_TAG_SET = 17

# RFC 5754 2: SHA-256 identifiers in CMS are generated with the parameters absent; asn1crypto would write
# NULL (the RFC 4055 form, right inside RSAES-OAEP-params), so this one is loaded from its encoding.
_SHA256_ALGORITHM = algos.DigestAlgorithm.load(bytes.fromhex("300b0609608648016503040201"))

_OAEP_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
# rsaEncryption (what OpenSSL writes) or sha256WithRSAEncryption: both mean PKCS#1 v1.5 here.
_PKCS1_SIGNATURE_ALGORITHMS = {"rsassa_pkcs1v15", "sha256_rsa"}


class ExportFileError(Exception):
    """An export file that cannot be decrypted or verified; the message says what failed, for users."""


class BinarySink(Protocol):
    def write(self, data: bytes, /) -> int | None: ...


class BinarySource(Protocol):
    def read(self, size: int, /) -> bytes: ...


class _GcmParameters(core.Sequence):
    """GCMParameters of RFC 5084 (asn1crypto knows the algorithm's OID, not its parameters)."""

    _fields = [
        ("aes_nonce", core.OctetString),
        ("aes_icvlen", core.Integer, {"default": 12}),
    ]


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


@dataclass(frozen=True)
class VerifiedExport:
    """A file whose tag, content digest and signature all verified."""

    signer_certificate: x509.Certificate
    signer_fingerprint: str
    signing_time: datetime.datetime | None
    content_bytes: int
    content_sha256: str


# Chunk headers by hand: an asn1crypto object per chunk would cost more than hashing and encrypting it.
def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes((length,))
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(octets),)) + octets


def _octet_string_header(length: int) -> bytes:
    return b"\x04" + _der_length(length)


def _write_all(output: BinarySink, data: bytes) -> None:
    """Writes everything, also to raw files whose write() may take only part of it."""
    written = output.write(data)
    if written is None or written >= len(data):
        return
    view = memoryview(data)[written:]
    while view:
        written = output.write(view.tobytes()) or 0
        view = view[written:]


def _issuer_and_serial_number(certificate: x509.Certificate) -> cms.IssuerAndSerialNumber:
    parsed = asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
    return cms.IssuerAndSerialNumber({"issuer": parsed.issuer, "serial_number": parsed.serial_number})


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
                                value=_issuer_and_serial_number(recipient_certificate),
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
                "parameters": _GcmParameters({"aes_nonce": nonce, "aes_icvlen": GCM_TAG_SIZE}),
            }
        )
        self._emit(
            b"".join(
                (
                    _INDEFINITE_SEQUENCE,  # ContentInfo
                    cms.ContentType("authenticated_enveloped_data").dump(),
                    _INDEFINITE_CONTEXT_0,  # [0] EXPLICIT content
                    _INDEFINITE_SEQUENCE,  # AuthEnvelopedData
                    core.Integer(0).dump(),  # version
                    recipient_infos.dump(),
                    _INDEFINITE_SEQUENCE,  # authEncryptedContentInfo
                    cms.ContentType("data").dump(),
                    content_encryption_algorithm.dump(),
                    _INDEFINITE_CONTEXT_0,  # [0] IMPLICIT encryptedContent, constructed
                )
            )
        )

    def _emit(self, data: bytes) -> None:
        _write_all(self._output, data)
        self._file_hash.update(data)
        self._file_bytes += len(data)

    def _chunk(self, data: bytes | memoryview) -> None:
        ciphertext = self._encryptor.update(data)
        self._emit(_octet_string_header(len(ciphertext)) + ciphertext)

    def close(self) -> EnvelopeSummary:
        if self._closed:
            raise ValueError("the export writer is already closed")
        self._drain()
        self._closed = True
        last = self._encryptor.finalize()  # GCM is a stream mode: nothing is held back
        if last:
            self._emit(_octet_string_header(len(last)) + last)
        self._emit(
            b"".join(
                (
                    _END_OF_CONTENTS,  # encryptedContent
                    _END_OF_CONTENTS,  # authEncryptedContentInfo
                    core.OctetString(self._encryptor.tag).dump(),  # mac
                    _END_OF_CONTENTS,  # AuthEnvelopedData
                    _END_OF_CONTENTS,  # [0] EXPLICIT content
                    _END_OF_CONTENTS,  # ContentInfo
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
                _INDEFINITE_SEQUENCE,  # ContentInfo
                cms.ContentType("signed_data").dump(),
                _INDEFINITE_CONTEXT_0,  # [0] EXPLICIT content
                _INDEFINITE_SEQUENCE,  # SignedData
                core.Integer(1).dump(),  # version: issuerAndSerialNumber and id-data
                cms.DigestAlgorithms([_SHA256_ALGORITHM]).dump(),
                _INDEFINITE_SEQUENCE,  # encapContentInfo
                cms.ContentType("data").dump(),
                _INDEFINITE_CONTEXT_0,  # [0] EXPLICIT eContent
                _INDEFINITE_OCTET_STRING,
            )
        )

    def _chunk(self, data: bytes | memoryview) -> None:
        self._content_hash.update(data)
        self._content_bytes += len(data)
        _write_all(self._output, b"".join((self._framing, _octet_string_header(len(data)), data)))
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
                    value=_issuer_and_serial_number(self._signer.certificate),
                ),
                "digest_algorithm": _SHA256_ALGORITHM,
                "signed_attrs": signed_attributes,
                "signature_algorithm": {"algorithm": "rsassa_pkcs1v15", "parameters": core.Null()},
                "signature": signature,
            }
        )
        certificate = asn1_x509.Certificate.load(
            self._signer.certificate.public_bytes(serialization.Encoding.DER)
        )
        _write_all(
            self._output,
            b"".join(
                (
                    self._framing,  # still there when the content is empty
                    _END_OF_CONTENTS,  # eContent OCTET STRING
                    _END_OF_CONTENTS,  # [0] EXPLICIT eContent
                    _END_OF_CONTENTS,  # encapContentInfo
                    cms.CertificateSet([certificate], implicit=0).dump(),
                    cms.SignerInfos([signer_info]).dump(),
                    _END_OF_CONTENTS,  # SignedData
                    _END_OF_CONTENTS,  # [0] EXPLICIT content
                    _END_OF_CONTENTS,  # ContentInfo
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


# Reading -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Header:
    form: int  # the class and constructed bits of the identifier octet
    number: int
    length: int | None  # None: indefinite
    raw: bytes

    @property
    def constructed(self) -> bool:
        return bool(self.form & 0x20)

    def is_(self, form: int, number: int) -> bool:
        return self.form == form and self.number == number


class _BerReader:
    """Reads BER from a stream, one element header or bounded value at a time, keeping track of the
    position so that definite-length containers can end, and never holding more than one read ahead.
    Hand-written because asn1crypto parses whole values only; it still decodes the small structures."""

    def __init__(self, read_some: Callable[[], bytes], what: str) -> None:
        self._read_some = read_some  # returns any amount, b"" at the end
        self._what = what
        self._buffer = b""
        self._offset = 0
        self.position = 0

    def error(self, problem: str) -> ExportFileError:
        return ExportFileError(
            f"{self._what} is not a valid export file: {problem} (at byte {self.position})."
        )

    def _fill(self, size: int) -> bool:
        while len(self._buffer) - self._offset < size:
            more = self._read_some()
            if not more:
                return False
            self._buffer = self._buffer[self._offset :] + more
            self._offset = 0
        return True

    def _take(self, size: int) -> bytes:
        data = self._buffer[self._offset : self._offset + size]
        self._offset += size
        self.position += size
        return data

    def read_exact(self, size: int) -> bytes:
        if not self._fill(size):
            raise self.error("it ends too early")
        return self._take(size)

    def read_some(self, limit: int) -> bytes:
        """Between 1 and limit bytes: what is buffered, else one read of the source."""
        if not self._fill(1):
            raise self.error("it ends too early")
        return self._take(min(limit, len(self._buffer) - self._offset))

    def peek_identifier(self) -> int | None:
        if not self._fill(1):
            return None
        return self._buffer[self._offset]

    def at_end(self, end: int | None) -> bool:
        """Whether the container ending at `end` (None: indefinite length) has no more elements."""
        if end is not None:
            if self.position > end:
                raise self.error("an element overruns its container")
            return self.position == end
        if not self._fill(2):
            raise self.error("it ends too early")
        return self._buffer[self._offset : self._offset + 2] == _END_OF_CONTENTS

    def leave(self, end: int | None) -> None:
        if not self.at_end(end):
            raise self.error("unexpected data at the end of a structure")
        if end is None:
            self._take(2)

    def at_eof(self) -> bool:
        return not self._fill(1)

    def header(self) -> _Header:
        identifier = self.read_exact(1)
        raw = [identifier]
        number = identifier[0] & 0x1F
        if number == 0x1F:  # high tag number form: base-128 octets
            number = 0
            while True:
                octet = self.read_exact(1)
                raw.append(octet)
                number = (number << 7) | (octet[0] & 0x7F)
                if not octet[0] & 0x80:
                    break
                if number > 0xFFFF:
                    raise self.error("a tag number is too large")
        length_octet = self.read_exact(1)
        raw.append(length_octet)
        length: int | None = length_octet[0]
        if length_octet[0] == 0x80:
            if not identifier[0] & 0x20:
                raise self.error("a primitive element has an indefinite length")
            length = None
        elif length_octet[0] > 0x80:
            count = length_octet[0] & 0x7F
            if count > 8:
                raise self.error("a length is too large")
            length_octets = self.read_exact(count)
            raw.append(length_octets)
            length = int.from_bytes(length_octets, "big")
        return _Header(form=identifier[0] & 0xE0, number=number, length=length, raw=b"".join(raw))

    def expect(self, form: int, number: int, name: str) -> _Header:
        header = self.header()
        if not header.is_(form, number):
            raise self.error(f"{name} expected")
        return header

    def enter(self, form: int, number: int, name: str) -> int | None:
        """Reads a constructed element's header; returns where it ends (None: at its end-of-contents)."""
        header = self.expect(form, number, name)
        return None if header.length is None else self.position + header.length

    def value(self, header: _Header, limit: int = _STRUCTURE_LIMIT) -> bytes:
        """The contents of a definite-length element of at most limit bytes."""
        if header.length is None:
            raise self.error("a definite length expected")
        if header.length > limit:
            raise self.error("an element is too large")
        return self.read_exact(header.length)

    def oid(self, name: str) -> str:
        header = self.expect(_UNIVERSAL, _TAG_OID, name)
        return str(core.ObjectIdentifier.load(header.raw + self.value(header, 256)).dotted)

    def integer(self, name: str) -> int:
        header = self.expect(_UNIVERSAL, _TAG_INTEGER, name)
        return int(core.Integer.load(header.raw + self.value(header, 64)).native)

    def element(self, limit: int = _STRUCTURE_LIMIT, depth: int = 0) -> bytes:
        """A whole small element as encoded, also with indefinite lengths inside (asn1crypto reads those)."""
        start = self.position
        header = self.header()
        if header.length is not None:
            return header.raw + self.value(header, limit)
        if depth > _NESTING_LIMIT:
            raise self.error("elements are nested too deeply")
        parts = [header.raw]
        while not self.at_end(None):
            parts.append(self.element(limit - (self.position - start), depth + 1))
        parts.append(self.read_exact(2))
        return b"".join(parts)

    def octets(self, header: _Header, depth: int = 0) -> Iterator[bytes]:
        """The contents of an OCTET STRING (or of an implicitly tagged one), primitive or constructed, in
        pieces of at most _READ_SIZE bytes."""
        if not header.constructed:
            remaining = header.length or 0  # primitive: always definite
            while remaining:
                piece = self.read_some(min(remaining, _READ_SIZE))
                remaining -= len(piece)
                yield piece
            return
        if depth > _NESTING_LIMIT:
            raise self.error("strings are nested too deeply")
        end = None if header.length is None else self.position + header.length
        while not self.at_end(end):
            child = self.header()
            if child.number != _TAG_OCTET_STRING or child.form & 0xC0 != _UNIVERSAL:
                raise self.error("an OCTET STRING expected")
            yield from self.octets(child, depth + 1)
        self.leave(end)


_OID_DATA = "1.2.840.113549.1.7.1"
_OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
_OID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
_OID_AUTH_ENVELOPED_DATA = "1.2.840.113549.1.9.16.1.23"
_OID_AES_256_GCM = "2.16.840.1.101.3.4.1.46"
_ASN1_ERRORS = (ValueError, TypeError, KeyError, IndexError)  # how asn1crypto reports malformed input


def _content_key(recipient_infos: bytes, recipient_key: rsa.RSAPrivateKey) -> bytes:
    """The content-encryption key, from the first RSA-OAEP recipient that this private key decrypts."""
    oaep_recipients = 0
    try:
        for recipient in cms.RecipientInfos.load(recipient_infos):
            if recipient.name != "ktri":
                continue
            algorithm = recipient.chosen["key_encryption_algorithm"]
            if algorithm["algorithm"].native != "rsaes_oaep":
                continue
            parameters = algorithm["parameters"]
            if not isinstance(parameters, algos.RSAESOAEPParams):
                parameters = algos.RSAESOAEPParams({})  # absent: the defaults (SHA-1)
            hash_name = parameters["hash_algorithm"]["algorithm"].native
            mask = parameters["mask_gen_algorithm"]
            mask_hash_name = mask["parameters"]["algorithm"].native
            label = parameters["p_source_algorithm"]["parameters"].native or None
            if mask["algorithm"].native != "mgf1" or {hash_name, mask_hash_name} - _OAEP_HASHES.keys():
                continue
            oaep_recipients += 1
            oaep = padding.OAEP(
                mgf=padding.MGF1(_OAEP_HASHES[mask_hash_name]()),
                algorithm=_OAEP_HASHES[hash_name](),
                label=label,
            )
            try:
                content_key = recipient_key.decrypt(recipient.chosen["encrypted_key"].native, oaep)
            except ValueError:
                continue
            if len(content_key) == AES_256_KEY_SIZE:
                return content_key
    except _ASN1_ERRORS as error:
        raise ExportFileError("The file's recipient information cannot be read.") from error
    if not oaep_recipients:
        raise ExportFileError(
            "The file has no recipient with RSA-OAEP key transport (what export files use), so it cannot be "
            "decrypted with an RSA key."
        )
    raise ExportFileError(
        "This file is not encrypted for this key: no recipient in it can be decrypted with the key given "
        "(is it the file of another country, or the key of another certificate?)."
    )


def _gcm_nonce(content_encryption_algorithm: bytes) -> bytes:
    try:
        algorithm = algos.EncryptionAlgorithm.load(content_encryption_algorithm)
        oid = algorithm["algorithm"].dotted
        if oid != _OID_AES_256_GCM:
            raise ExportFileError(
                f"The content is encrypted with {algorithm['algorithm'].native}; "
                "export files use AES-256-GCM."
            )
        parameters = _GcmParameters.load(algorithm["parameters"].dump())
        nonce = bytes(parameters["aes_nonce"].native)
        tag_size = int(parameters["aes_icvlen"].native)
    except _ASN1_ERRORS as error:
        raise ExportFileError("The file's AES-GCM parameters cannot be read.") from error
    if len(nonce) != GCM_NONCE_SIZE or tag_size != GCM_TAG_SIZE:
        raise ExportFileError(
            f"The file uses AES-GCM with a {len(nonce)}-byte nonce and a {tag_size}-byte tag; "
            f"export files use {GCM_NONCE_SIZE} and {GCM_TAG_SIZE}."
        )
    return nonce


def _wrong_outer_type(content_type: str) -> ExportFileError:
    if content_type == _OID_SIGNED_DATA:
        return ExportFileError("The file is signed but not encrypted; export files are both.")
    if content_type == _OID_ENVELOPED_DATA:
        return ExportFileError(
            "The file is encrypted without authentication (EnvelopedData); "
            "export files use AuthEnvelopedData."
        )
    return ExportFileError(f"The file is a CMS file of another type ({content_type}), not an export file.")


def _auth_enveloped_plaintext(reader: _BerReader, recipient_key: rsa.RSAPrivateKey) -> Iterator[bytes]:
    if reader.peek_identifier() is None:
        raise ExportFileError("The file is empty.")
    content_info_end = reader.enter(_UNIVERSAL_CONSTRUCTED, _TAG_SEQUENCE, "a CMS ContentInfo")
    content_type = reader.oid("the content type")
    if content_type != _OID_AUTH_ENVELOPED_DATA:
        raise _wrong_outer_type(content_type)
    explicit_end = reader.enter(_CONTEXT_CONSTRUCTED, 0, "the content")
    envelope_end = reader.enter(_UNIVERSAL_CONSTRUCTED, _TAG_SEQUENCE, "AuthEnvelopedData")
    if reader.integer("the version") != 0:
        raise reader.error("an AuthEnvelopedData version other than 0")
    if reader.peek_identifier() == _CONTEXT_CONSTRUCTED:  # originatorInfo: of no use to key transport
        reader.element()
    recipient_infos = reader.element()
    if recipient_infos[0] != _UNIVERSAL_CONSTRUCTED | _TAG_SET:
        raise reader.error("recipientInfos expected")
    content_key = _content_key(recipient_infos, recipient_key)
    encrypted_info_end = reader.enter(_UNIVERSAL_CONSTRUCTED, _TAG_SEQUENCE, "authEncryptedContentInfo")
    if reader.oid("the encrypted content type") != _OID_DATA:
        raise reader.error("an encrypted content type other than id-data")
    nonce = _gcm_nonce(reader.element(4096))
    decryptor = Cipher(algorithms.AES(content_key), modes.GCM(nonce)).decryptor()
    if reader.at_end(encrypted_info_end):
        raise ExportFileError("The file has no encrypted content.")
    encrypted_content = reader.header()
    if encrypted_content.number != 0 or encrypted_content.form not in (_CONTEXT, _CONTEXT_CONSTRUCTED):
        raise reader.error("the encrypted content expected")
    for ciphertext in reader.octets(encrypted_content):
        plaintext = decryptor.update(ciphertext)
        if plaintext:
            yield plaintext
    reader.leave(encrypted_info_end)
    if reader.peek_identifier() == _CONTEXT_CONSTRUCTED | 1:
        # They would be the GCM's additional data, needed before the content that precedes them.
        raise ExportFileError("The file has authenticated attributes, which export files do not use.")
    mac = reader.value(reader.expect(_UNIVERSAL, _TAG_OCTET_STRING, "the authentication tag (mac)"), 64)
    if len(mac) != GCM_TAG_SIZE:
        raise reader.error(f"an authentication tag of {len(mac)} bytes")
    try:
        last = decryptor.finalize_with_tag(mac)
    except InvalidTag:
        raise ExportFileError(
            "The file has been altered or damaged: its authentication tag (AES-GCM) does not match. Nothing "
            "decrypted from it may be used."
        ) from None
    if last:
        yield last
    if reader.peek_identifier() == _CONTEXT_CONSTRUCTED | 2:  # unauthAttrs: nothing to check in them
        reader.element()
    reader.leave(envelope_end)
    reader.leave(explicit_end)
    reader.leave(content_info_end)
    if not reader.at_eof():
        raise reader.error("data after the end of the file")


def auth_enveloped_data_decrypt(source: BinarySource, recipient_key: rsa.RSAPrivateKey) -> Iterator[bytes]:
    """The plaintext of an AuthEnvelopedData file, in chunks, as it is read from source. The GCM tag is
    checked after the last chunk, as the iteration ends: nothing received may be trusted (or kept) unless
    the iteration ran to its end without an ExportFileError."""
    return _auth_enveloped_plaintext(_BerReader(lambda: source.read(_READ_SIZE), "The file"), recipient_key)


@dataclass(frozen=True)
class _SignedContent:
    content_bytes: int
    content_digest: bytes
    certificates: list[bytes]
    signer_infos: bytes


def _signed_data_read(reader: _BerReader, sink: BinarySink | None) -> _SignedContent:
    """Reads a SignedData ContentInfo, giving its content to sink as it goes, up to its end."""
    if reader.peek_identifier() is None:
        raise reader.error("it is empty")
    content_info_end = reader.enter(_UNIVERSAL_CONSTRUCTED, _TAG_SEQUENCE, "a CMS ContentInfo")
    if reader.oid("the content type") != _OID_SIGNED_DATA:
        raise ExportFileError("The content of the file is not signed (it is not a CMS SignedData).")
    explicit_end = reader.enter(_CONTEXT_CONSTRUCTED, 0, "the content")
    signed_data_end = reader.enter(_UNIVERSAL_CONSTRUCTED, _TAG_SEQUENCE, "SignedData")
    reader.integer("the version")
    reader.element()  # digestAlgorithms: only a hint for one-pass readers; the SignerInfo's is checked
    encapsulated_end = reader.enter(_UNIVERSAL_CONSTRUCTED, _TAG_SEQUENCE, "encapContentInfo")
    if reader.oid("the signed content type") != _OID_DATA:
        raise reader.error("a signed content type other than id-data")
    if reader.at_end(encapsulated_end):
        raise ExportFileError("The signature is detached: the file carries no content.")
    econtent_end = reader.enter(_CONTEXT_CONSTRUCTED, 0, "the signed content")
    content = reader.header()
    if content.number != _TAG_OCTET_STRING or content.form & 0xC0 != _UNIVERSAL:
        raise reader.error("the signed content's OCTET STRING expected")
    content_hash = hashlib.sha256()
    content_bytes = 0
    for piece in reader.octets(content):
        content_hash.update(piece)
        content_bytes += len(piece)
        if sink is not None:
            _write_all(sink, piece)
    reader.leave(econtent_end)
    reader.leave(encapsulated_end)
    certificates: list[bytes] = []
    if reader.peek_identifier() == _CONTEXT_CONSTRUCTED:
        try:
            for choice in cms.CertificateSet.load(reader.element(), implicit=0):
                if choice.name == "certificate":
                    certificates.append(choice.chosen.dump())
        except _ASN1_ERRORS as error:
            raise ExportFileError("The certificates in the file cannot be read.") from error
    if reader.peek_identifier() == _CONTEXT_CONSTRUCTED | 1:  # crls: not used
        reader.element()
    signer_infos = reader.element()
    reader.leave(signed_data_end)
    reader.leave(explicit_end)
    reader.leave(content_info_end)
    return _SignedContent(
        content_bytes=content_bytes,
        content_digest=content_hash.digest(),
        certificates=certificates,
        signer_infos=signer_infos,
    )


def _certificate_is_signer(sid: cms.SignerIdentifier, certificate: x509.Certificate) -> bool:
    parsed = asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
    if sid.name == "issuer_and_serial_number":
        return bool(
            sid.chosen["issuer"] == parsed.issuer
            and sid.chosen["serial_number"].native == parsed.serial_number
        )
    return bool(sid.chosen.native == parsed.key_identifier)


def _describe(certificate: x509.Certificate) -> str:
    fingerprint = certificate_fingerprint(certificate)
    return f"{certificate.subject.rfc4514_string()}, SHA-256 fingerprint {fingerprint}"


def _signature_verify(content: _SignedContent, expected_signer: x509.Certificate | None) -> VerifiedExport:
    try:
        signer_infos = cms.SignerInfos.load(content.signer_infos)
        if len(signer_infos) != 1:
            raise ExportFileError(f"The file has {len(signer_infos)} signatures; export files have one.")
        signer_info = signer_infos[0]
        digest_algorithm = signer_info["digest_algorithm"]["algorithm"].native
        signature_algorithm = signer_info["signature_algorithm"]["algorithm"].native
        signed_attributes = signer_info["signed_attrs"]
        if isinstance(signed_attributes, core.Void):
            raise ExportFileError("The signature has no signed attributes; export files have them.")
        values: dict[str, list[object]] = {}
        for attribute in signed_attributes:
            values.setdefault(attribute["type"].native, []).extend(v.native for v in attribute["values"])
        sid = signer_info["sid"]
        signature = bytes(signer_info["signature"].native)
        # RFC 5652 5.4: the signature covers the DER of the attributes with the SET OF tag, not [0].
        signed_bytes = (
            b"\x31" + _der_length(len(signed_attributes.contents)) + bytes(signed_attributes.contents)
        )
        certificates = [x509.load_der_x509_certificate(der) for der in content.certificates]
        signer_certificate: x509.Certificate | None
        if expected_signer is not None and _certificate_is_signer(sid, expected_signer):
            signer_certificate = expected_signer
        else:
            signer_certificate = next((c for c in certificates if _certificate_is_signer(sid, c)), None)
    except _ASN1_ERRORS as error:
        raise ExportFileError("The signature information in the file cannot be read.") from error
    if digest_algorithm != "sha256":
        raise ExportFileError(f"The signature uses the digest {digest_algorithm}; export files use SHA-256.")
    if signature_algorithm not in _PKCS1_SIGNATURE_ALGORITHMS:
        raise ExportFileError(
            f"The signature algorithm is {signature_algorithm}; "
            "export files use RSA PKCS#1 v1.5 with SHA-256."
        )
    if values.get("content_type") != ["data"]:
        raise ExportFileError("The signed content-type attribute is missing or is not id-data.")
    if len(values.get("message_digest", [])) != 1:
        raise ExportFileError("The signed message-digest attribute is missing or repeated.")
    signing_times = values.get("signing_time", [])
    signing_time = signing_times[0] if len(signing_times) == 1 else None
    if expected_signer is not None and signer_certificate is not expected_signer:
        signer = f" ({_describe(signer_certificate)})" if signer_certificate is not None else ""
        raise ExportFileError(
            f"The file is signed by another certificate{signer}, not by the expected platform certificate "
            f"({_describe(expected_signer)})."
        )
    if signer_certificate is None:
        raise ExportFileError(
            "The signer's certificate is not in the file, so the signature cannot be checked."
        )
    if values["message_digest"][0] != content.content_digest:
        raise ExportFileError(
            "The content does not match its signature (message digest differs): it was altered after signing."
        )
    try:
        public_key = certificate_rsa_key(signer_certificate)
    except CertificateError as error:
        raise ExportFileError(f"The signer's certificate cannot be used: {error}") from None
    try:
        public_key.verify(signature, signed_bytes, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise ExportFileError(
            f"The signature is invalid: it does not verify with the signer's certificate "
            f"({_describe(signer_certificate)})."
        ) from None
    return VerifiedExport(
        signer_certificate=signer_certificate,
        signer_fingerprint=certificate_fingerprint(signer_certificate),
        signing_time=signing_time if isinstance(signing_time, datetime.datetime) else None,
        content_bytes=content.content_bytes,
        content_sha256=content.content_digest.hex(),
    )


def signed_data_read(
    source: BinarySource, sink: BinarySink | None, *, expected_signer: x509.Certificate | None
) -> VerifiedExport:
    """Reads a CMS SignedData file (e.g. what `openssl cms -decrypt` wrote), giving its content to sink as
    it goes, and verifies the signature (by expected_signer when given, else by the certificate in the
    file, which proves integrity only). Raises ExportFileError; the sink's content is unverified until
    this returns."""
    reader = _BerReader(lambda: source.read(_READ_SIZE), "The signed file")
    content = _signed_data_read(reader, sink)
    if not reader.at_eof():
        raise reader.error("data after the signed content")
    return _signature_verify(content, expected_signer)


def export_file_read(
    source: BinarySource,
    sink: BinarySink | None,
    *,
    recipient_key: rsa.RSAPrivateKey,
    expected_signer: x509.Certificate | None,
) -> VerifiedExport:
    """Decrypts an export file with the authority's private key, giving the XML to sink as it goes, then
    checks the GCM tag, the content digest and the signature, which must be by expected_signer (the
    platform's certificate) unless None (then any certificate in the file: integrity only). Raises
    ExportFileError saying what failed. The XML given to sink is unverified until this returns: discard it
    when this raises."""
    plaintext = auth_enveloped_data_decrypt(source, recipient_key)
    reader = _BerReader(lambda: next(plaintext, b""), "The decrypted content")
    try:
        content = _signed_data_read(reader, sink)
        if not reader.at_eof():  # also runs the decryption to its end, which checks the tag
            raise reader.error("data after the signed content")
    except ExportFileError:
        # Garbled plaintext is most likely a tampered ciphertext: let the tag say so if it does.
        for _ignored in plaintext:
            pass
        raise
    return _signature_verify(content, expected_signer)
