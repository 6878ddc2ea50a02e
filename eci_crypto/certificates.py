"""Certificates and keys of the export files: the platform's export-signing identity and the competent
authorities' encryption certificates.

Both must be RSA of at least 3072 bits (the strength of a 128-bit symmetric key, which is what the AES-256-GCM
content encryption and SHA-256 offer at the least). Fingerprints are SHA-256, upper-case hex with colons, as
`openssl x509 -noout -fingerprint -sha256 -in cert.pem` prints them, so that an authority can compare them.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

RSA_MINIMUM_BITS = 3072
DEVELOPMENT_CERTIFICATE_DAYS = 730


class CertificateError(ValueError):
    """A certificate or key that cannot be used for export files; the message says why, for users."""


@dataclass(frozen=True)
class SigningIdentity:
    """The platform's export-signing key and its certificate (checked to belong together)."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def fingerprint(self) -> str:
        return certificate_fingerprint(self.certificate)

    def __repr__(self) -> str:  # never print key material, even in a traceback
        return f"SigningIdentity(certificate={self.fingerprint})"


def certificate_fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, upper-case hex with colons (the form OpenSSL prints)."""
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def fingerprint_normalised(text: object) -> str:
    """A SHA-256 fingerprint as `certificate_fingerprint` writes it (upper-case hex pairs joined by
    colons), whatever colons, spaces and case it was typed or stored with."""
    hex_digits = "".join(character for character in str(text) if character not in ": \t").upper()
    return ":".join(hex_digits[index : index + 2] for index in range(0, len(hex_digits), 2))


def certificate_rsa_key(certificate: x509.Certificate) -> rsa.RSAPublicKey:
    """The certificate's RSA public key, refused unless RSA of at least RSA_MINIMUM_BITS bits."""
    try:
        public_key = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm) as error:
        raise CertificateError("The certificate's public key cannot be read.") from error
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise CertificateError(
            f"The certificate's key is not RSA; export files need an RSA key of at least "
            f"{RSA_MINIMUM_BITS} bits."
        )
    if public_key.key_size < RSA_MINIMUM_BITS:
        raise CertificateError(
            f"The certificate's RSA key has {public_key.key_size} bits; at least {RSA_MINIMUM_BITS} are "
            "required."
        )
    return public_key


def certificate_load(data: bytes) -> x509.Certificate:
    """An X.509 certificate from PEM (or DER) bytes, refused with a CertificateError unless it carries an
    RSA key of at least RSA_MINIMUM_BITS bits. Validity dates are not checked here."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            certificate = x509.load_pem_x509_certificate(data)
        else:
            certificate = x509.load_der_x509_certificate(data)
    except ValueError as error:
        raise CertificateError("This is not an X.509 certificate in PEM or DER form.") from error
    certificate_rsa_key(certificate)
    return certificate


def private_key_load(data: bytes, password: bytes | None = None) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM bytes (PKCS#8 or PKCS#1, encrypted if password is given)."""
    try:
        private_key = serialization.load_pem_private_key(data, password=password)
    except TypeError as error:  # a password given for a clear key, or none for an encrypted one
        raise CertificateError(f"The private key cannot be opened: {error}") from error
    except (ValueError, UnsupportedAlgorithm) as error:
        raise CertificateError(
            "This is not a PEM private key, or its password is wrong, or it is damaged."
        ) from error
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise CertificateError("The private key is not an RSA key.")
    if private_key.key_size < RSA_MINIMUM_BITS:
        raise CertificateError(
            f"The RSA private key has {private_key.key_size} bits; at least {RSA_MINIMUM_BITS} are required."
        )
    return private_key


def _public_key_der(public_key: rsa.RSAPublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def signing_identity_load(
    private_key_pem: bytes, certificate_pem: bytes, password: bytes | None = None
) -> SigningIdentity:
    """The platform's export-signing identity from PEM bytes; the key must match the certificate."""
    private_key = private_key_load(private_key_pem, password)
    certificate = certificate_load(certificate_pem)
    if _public_key_der(private_key.public_key()) != _public_key_der(certificate_rsa_key(certificate)):
        raise CertificateError("The export-signing private key does not belong to the certificate.")
    return SigningIdentity(private_key=private_key, certificate=certificate)


def signing_identity_from_files(
    private_key_path: str | Path, certificate_path: str | Path, password: bytes | None = None
) -> SigningIdentity:
    """The platform's export-signing identity from two PEM files."""
    return signing_identity_load(
        Path(private_key_path).read_bytes(), Path(certificate_path).read_bytes(), password
    )


def self_signed_certificate_create(
    common_name: str, key_size: int = RSA_MINIMUM_BITS, days: int = DEVELOPMENT_CERTIFICATE_DAYS
) -> tuple[bytes, bytes]:
    """A new RSA key and a self-signed certificate for it, as (private key PEM, certificate PEM), for
    development, tests and demonstration authorities. The key is PKCS#8 PEM without a password.

    One certificate serves both uses (signing and key encipherment): fine for development, whereas a real
    authority or platform certificate comes from its own issuer. No extended key usage is set, so OpenSSL's
    default S/MIME purpose check accepts it."""
    if key_size < RSA_MINIMUM_BITS:
        raise CertificateError(f"RSA keys need at least {RSA_MINIMUM_BITS} bits.")
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    public_key = private_key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate clocks a little behind
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(private_key, hashes.SHA256())
    )
    private_key_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return private_key_pem, certificate.public_bytes(serialization.Encoding.PEM)
