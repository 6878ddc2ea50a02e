"""The algorithms and identifiers of the export files, shared by the writer and the reader: AES-256-GCM
content encryption (RFC 5084), SHA-256 (RFC 5754), the CMS content types (RFC 5652, RFC 5083), and the
issuer-and-serial-number form that names a certificate in recipient and signer information."""

from __future__ import annotations

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

GCM_NONCE_SIZE = 12
GCM_TAG_SIZE = 16
AES_256_KEY_SIZE = 32

OID_DATA = "1.2.840.113549.1.7.1"
OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
OID_AUTH_ENVELOPED_DATA = "1.2.840.113549.1.9.16.1.23"
OID_AES_256_GCM = "2.16.840.1.101.3.4.1.46"

# RFC 5754 2: SHA-256 identifiers in CMS are generated with the parameters absent; asn1crypto would write
# NULL (the RFC 4055 form, right inside RSAES-OAEP-params), so this one is loaded from its encoding.
SHA256_ALGORITHM = algos.DigestAlgorithm.load(bytes.fromhex("300b0609608648016503040201"))

# What the reader accepts: the hashes of RSAES-OAEP (RFC 8017 allows them all; export files use SHA-256) and,
# for signatures, rsaEncryption (what OpenSSL writes) or sha256WithRSAEncryption: both PKCS#1 v1.5 here.
OAEP_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
PKCS1_SIGNATURE_ALGORITHMS = frozenset({"rsassa_pkcs1v15", "sha256_rsa"})


class GcmParameters(core.Sequence):
    """GCMParameters of RFC 5084 (asn1crypto knows the algorithm's OID, not its parameters)."""

    _fields = [
        ("aes_nonce", core.OctetString),
        ("aes_icvlen", core.Integer, {"default": 12}),
    ]


def asn1_certificate(certificate: x509.Certificate) -> asn1_x509.Certificate:
    """The certificate as asn1crypto parses it (for its issuer, serial number and key identifier)."""
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def issuer_and_serial_number(certificate: x509.Certificate) -> cms.IssuerAndSerialNumber:
    parsed = asn1_certificate(certificate)
    return cms.IssuerAndSerialNumber({"issuer": parsed.issuer, "serial_number": parsed.serial_number})
