"""The sealed record format: one AES-256-GCM blob per record's personal data.

    blob = MAGIC (4 bytes, names the format) | key version (4 bytes, big-endian) | nonce (12 bytes)
           | ciphertext with its 16-byte tag

The associated data binds the header, the initiative, the record's UUID and its country, so a blob
cannot be moved to another row, country or initiative, nor relabelled with another version. There is no
plaintext path: anything that does not open is an error.
"""

from __future__ import annotations

import os
import struct
import uuid

from cryptography.exceptions import InvalidTag

from tenants.keyring.keys import UnwrappedKey, data_key, primary_data_key
from tenants.models import KeyPurpose

MAGIC = b"ECS1"
_HEADER = struct.Struct(">4sI")
_NONCE_BYTES = 12
_MINIMUM_LENGTH = _HEADER.size + _NONCE_BYTES + 16


class SealedRecordError(ValueError):
    """A blob that is malformed, tampered with, moved, or sealed under another key: it does not open."""


def _associated_data(header: bytes, initiative_id: int, record_id: uuid.UUID | bytes, country: str) -> bytes:
    # A reader in bulk may pass the record's 16 UUID bytes as they come from the database.
    record_bytes = record_id if isinstance(record_id, bytes) else record_id.bytes
    return header + struct.pack(">Q", initiative_id) + record_bytes + country.encode("ascii")


def seal_with(key: UnwrappedKey, record_id: uuid.UUID, country: str, plaintext: bytes) -> bytes:
    header = _HEADER.pack(MAGIC, key.version)
    nonce = os.urandom(_NONCE_BYTES)
    aad = _associated_data(header, key.initiative_id, record_id, country)
    return header + nonce + key.cipher.encrypt(nonce, plaintext, aad)


def seal(initiative_id: int, record_id: uuid.UUID, country: str, plaintext: bytes) -> bytes:
    """Seal a record's personal data under the initiative's primary personal-data key."""
    return seal_with(primary_data_key(initiative_id, KeyPurpose.PERSONAL_DATA), record_id, country, plaintext)


def sealed_version(blob: bytes) -> int:
    if len(blob) < _MINIMUM_LENGTH:
        raise SealedRecordError("The sealed record is too short.")
    magic, version = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise SealedRecordError("The sealed record has an unknown format.")
    return int(version)


def sealed_version_bytes() -> slice:
    """Where a blob's header holds its key version (big-endian), for readers that pick keys in bulk."""
    return slice(len(MAGIC), _HEADER.size)


def open_with(key: UnwrappedKey, record_id: uuid.UUID | bytes, country: str, blob: bytes) -> bytes:
    if sealed_version(blob) != key.version:
        raise SealedRecordError("The sealed record names another key version.")
    header, nonce, ciphertext = (
        blob[: _HEADER.size],
        blob[_HEADER.size : _MINIMUM_LENGTH - 16],
        blob[_MINIMUM_LENGTH - 16 :],
    )
    try:
        return key.cipher.decrypt(
            nonce, ciphertext, _associated_data(header, key.initiative_id, record_id, country)
        )
    except InvalidTag:
        raise SealedRecordError(
            "The sealed record does not open: tampered, moved or sealed elsewhere."
        ) from None


def open_sealed(initiative_id: int, record_id: uuid.UUID, country: str, blob: bytes) -> bytes:
    """Open a sealed record with the version its header names; unknown or destroyed versions fail."""
    version = sealed_version(blob)
    return open_with(data_key(initiative_id, KeyPurpose.PERSONAL_DATA, version), record_id, country, blob)
