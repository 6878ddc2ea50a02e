"""Reading export files: decrypt (CMS AuthEnvelopedData) and verify (CMS SignedData), as a stream.

GCM authenticates only at the very end, and the signature can be checked only after the content, so the
XML given to the sink is UNVERIFIED until export_file_read returns: whatever it wrote must be discarded when
it raises (write to a temporary path; rename only on success). Nothing decrypted is written anywhere but the
caller's sink.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from asn1crypto import algos, cms, core
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from eci_crypto.certificates import CertificateError, certificate_fingerprint, certificate_rsa_key
from eci_crypto.cms.algorithms import (
    AES_256_KEY_SIZE,
    GCM_NONCE_SIZE,
    GCM_TAG_SIZE,
    OAEP_HASHES,
    OID_AES_256_GCM,
    OID_AUTH_ENVELOPED_DATA,
    OID_DATA,
    OID_ENVELOPED_DATA,
    OID_SIGNED_DATA,
    PKCS1_SIGNATURE_ALGORITHMS,
    GcmParameters,
    asn1_certificate,
)
from eci_crypto.cms.ber import (
    CONTEXT,
    CONTEXT_CONSTRUCTED,
    READ_SIZE,
    TAG_OCTET_STRING,
    TAG_SEQUENCE,
    TAG_SET,
    UNIVERSAL,
    UNIVERSAL_CONSTRUCTED,
    BerReader,
    BinarySink,
    BinarySource,
    der_length,
    write_all,
)


class ExportFileError(Exception):
    """An export file that cannot be decrypted or verified; the message says what failed, for users."""


@dataclass(frozen=True)
class VerifiedExport:
    """A file whose tag, content digest and signature all verified."""

    signer_certificate: x509.Certificate
    signer_fingerprint: str
    signing_time: datetime.datetime | None
    content_bytes: int
    content_sha256: str


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
            if mask["algorithm"].native != "mgf1" or {hash_name, mask_hash_name} - OAEP_HASHES.keys():
                continue
            oaep_recipients += 1
            oaep = padding.OAEP(
                mgf=padding.MGF1(OAEP_HASHES[mask_hash_name]()),
                algorithm=OAEP_HASHES[hash_name](),
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
        if oid != OID_AES_256_GCM:
            raise ExportFileError(
                f"The content is encrypted with {algorithm['algorithm'].native}; "
                "export files use AES-256-GCM."
            )
        parameters = GcmParameters.load(algorithm["parameters"].dump())
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
    if content_type == OID_SIGNED_DATA:
        return ExportFileError("The file is signed but not encrypted; export files are both.")
    if content_type == OID_ENVELOPED_DATA:
        return ExportFileError(
            "The file is encrypted without authentication (EnvelopedData); "
            "export files use AuthEnvelopedData."
        )
    return ExportFileError(f"The file is a CMS file of another type ({content_type}), not an export file.")


def _auth_enveloped_plaintext(reader: BerReader, recipient_key: rsa.RSAPrivateKey) -> Iterator[bytes]:
    if reader.peek_identifier() is None:
        raise ExportFileError("The file is empty.")
    content_info_end = reader.enter(UNIVERSAL_CONSTRUCTED, TAG_SEQUENCE, "a CMS ContentInfo")
    content_type = reader.oid("the content type")
    if content_type != OID_AUTH_ENVELOPED_DATA:
        raise _wrong_outer_type(content_type)
    explicit_end = reader.enter(CONTEXT_CONSTRUCTED, 0, "the content")
    envelope_end = reader.enter(UNIVERSAL_CONSTRUCTED, TAG_SEQUENCE, "AuthEnvelopedData")
    if reader.integer("the version") != 0:
        raise reader.error("an AuthEnvelopedData version other than 0")
    if reader.peek_identifier() == CONTEXT_CONSTRUCTED:  # originatorInfo: of no use to key transport
        reader.element()
    recipient_infos = reader.element()
    if recipient_infos[0] != UNIVERSAL_CONSTRUCTED | TAG_SET:
        raise reader.error("recipientInfos expected")
    content_key = _content_key(recipient_infos, recipient_key)
    encrypted_info_end = reader.enter(UNIVERSAL_CONSTRUCTED, TAG_SEQUENCE, "authEncryptedContentInfo")
    if reader.oid("the encrypted content type") != OID_DATA:
        raise reader.error("an encrypted content type other than id-data")
    nonce = _gcm_nonce(reader.element(4096))
    decryptor = Cipher(algorithms.AES(content_key), modes.GCM(nonce)).decryptor()
    if reader.at_end(encrypted_info_end):
        raise ExportFileError("The file has no encrypted content.")
    encrypted_content = reader.header()
    if encrypted_content.number != 0 or encrypted_content.form not in (CONTEXT, CONTEXT_CONSTRUCTED):
        raise reader.error("the encrypted content expected")
    for ciphertext in reader.octets(encrypted_content):
        plaintext = decryptor.update(ciphertext)
        if plaintext:
            yield plaintext
    reader.leave(encrypted_info_end)
    if reader.peek_identifier() == CONTEXT_CONSTRUCTED | 1:
        # They would be the GCM's additional data, needed before the content that precedes them.
        raise ExportFileError("The file has authenticated attributes, which export files do not use.")
    mac = reader.value(reader.expect(UNIVERSAL, TAG_OCTET_STRING, "the authentication tag (mac)"), 64)
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
    if reader.peek_identifier() == CONTEXT_CONSTRUCTED | 2:  # unauthAttrs: nothing to check in them
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
    reader = BerReader(lambda: source.read(READ_SIZE), "The file", ExportFileError)
    return _auth_enveloped_plaintext(reader, recipient_key)


@dataclass(frozen=True)
class _SignedContent:
    content_bytes: int
    content_digest: bytes
    certificates: list[bytes]
    signer_infos: bytes


def _signed_data_read(reader: BerReader, sink: BinarySink | None) -> _SignedContent:
    """Reads a SignedData ContentInfo, giving its content to sink as it goes, up to its end."""
    if reader.peek_identifier() is None:
        raise reader.error("it is empty")
    content_info_end = reader.enter(UNIVERSAL_CONSTRUCTED, TAG_SEQUENCE, "a CMS ContentInfo")
    if reader.oid("the content type") != OID_SIGNED_DATA:
        raise ExportFileError("The content of the file is not signed (it is not a CMS SignedData).")
    explicit_end = reader.enter(CONTEXT_CONSTRUCTED, 0, "the content")
    signed_data_end = reader.enter(UNIVERSAL_CONSTRUCTED, TAG_SEQUENCE, "SignedData")
    reader.integer("the version")
    reader.element()  # digestAlgorithms: only a hint for one-pass readers; the SignerInfo's is checked
    encapsulated_end = reader.enter(UNIVERSAL_CONSTRUCTED, TAG_SEQUENCE, "encapContentInfo")
    if reader.oid("the signed content type") != OID_DATA:
        raise reader.error("a signed content type other than id-data")
    if reader.at_end(encapsulated_end):
        raise ExportFileError("The signature is detached: the file carries no content.")
    econtent_end = reader.enter(CONTEXT_CONSTRUCTED, 0, "the signed content")
    content = reader.header()
    if content.number != TAG_OCTET_STRING or content.form & 0xC0 != UNIVERSAL:
        raise reader.error("the signed content's OCTET STRING expected")
    content_hash = hashlib.sha256()
    content_bytes = 0
    for piece in reader.octets(content):
        content_hash.update(piece)
        content_bytes += len(piece)
        if sink is not None:
            write_all(sink, piece)
    reader.leave(econtent_end)
    reader.leave(encapsulated_end)
    certificates: list[bytes] = []
    if reader.peek_identifier() == CONTEXT_CONSTRUCTED:
        try:
            for choice in cms.CertificateSet.load(reader.element(), implicit=0):
                if choice.name == "certificate":
                    certificates.append(choice.chosen.dump())
        except _ASN1_ERRORS as error:
            raise ExportFileError("The certificates in the file cannot be read.") from error
    if reader.peek_identifier() == CONTEXT_CONSTRUCTED | 1:  # crls: not used
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
    parsed = asn1_certificate(certificate)
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
            b"\x31" + der_length(len(signed_attributes.contents)) + bytes(signed_attributes.contents)
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
    if signature_algorithm not in PKCS1_SIGNATURE_ALGORITHMS:
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
    reader = BerReader(lambda: source.read(READ_SIZE), "The signed file", ExportFileError)
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
    reader = BerReader(lambda: next(plaintext, b""), "The decrypted content", ExportFileError)
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
