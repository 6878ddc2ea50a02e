"""Keys for the secrets of the second factor, so that a copy of the database alone yields no one's
codes: a TOTP secret is sealed (AES-256-GCM, bound to its account) and a backup code is kept as an
HMAC. django-otp keeps both in clear (its issues 67 and 68), hence this module.

Both keys come from the key provider, as the audit chain's key does (HKDF over it with a label of their
own): KMS or the local master key, never the database."""

from __future__ import annotations

import functools
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tenants.keyring.providers import key_provider

_SEALED_MAGIC = b"OTP1"
_NONCE_BYTES = 12


class SealedSecretError(ValueError):
    """A sealed TOTP secret that does not open (tampered with, moved to another account, other key)."""


@functools.lru_cache(maxsize=4)
def _derived(root: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(root)


def _key(label: bytes) -> bytes:
    return _derived(key_provider().audit_key(), label)


def _binding(user_id: int) -> bytes:
    return _SEALED_MAGIC + f":totp:user={user_id}".encode()


def totp_secret_seal(secret: bytes, *, user_id: int) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(_key(b"eci second factor: totp secrets v1")).encrypt(nonce, secret, _binding(user_id))
    return _SEALED_MAGIC + nonce + sealed


def totp_secret_open(blob: bytes, *, user_id: int) -> bytes:
    blob = bytes(blob)
    if not blob.startswith(_SEALED_MAGIC):
        raise SealedSecretError("Not a sealed TOTP secret.")
    nonce, sealed = blob[4 : 4 + _NONCE_BYTES], blob[4 + _NONCE_BYTES :]
    try:
        return AESGCM(_key(b"eci second factor: totp secrets v1")).decrypt(nonce, sealed, _binding(user_id))
    except InvalidTag:
        raise SealedSecretError("The TOTP secret does not open for this account.") from None


def backup_code_digest(code: str, *, user_id: int) -> str:
    """The HMAC a backup code is kept as (40 random bits: without the key, no table of them helps)."""
    message = f"{user_id}:{code}".encode()
    return hmac.new(_key(b"eci second factor: backup codes v1"), message, hashlib.sha256).hexdigest()
