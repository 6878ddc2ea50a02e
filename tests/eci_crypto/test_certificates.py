"""The certificate helpers (eci_crypto/certificates.py): certificates load from PEM or DER with an
OpenSSL-style fingerprint, unusable ones are refused clearly, and the signing identity loads from files
and must match its certificate. No database needed."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from eci_crypto.certificates import (
    CertificateError,
    certificate_fingerprint,
    certificate_load,
    private_key_load,
    self_signed_certificate_create,
    signing_identity_from_files,
    signing_identity_load,
)
from tests.eci_crypto.parties import Party

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
