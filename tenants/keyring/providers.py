"""Key providers: the root of trust that holds each initiative's key-encryption key (KEK).

A provider creates a KEK, wraps and unwraps data keys with it, and destroys it. The data keys (DEKs) are
stored wrapped in the database; the KEK itself never is. Destroying the KEK is what crypto-shreds an
initiative: the wrapped DEKs in the database, and in every backup of it, become useless.

- `local`: a 256-bit master key from a secret file or the environment wraps one random KEK per
  initiative, kept as a file in a key store folder (never in the database, so database backups do not
  carry it); destroying overwrites and removes that file. For one machine and development.
- `aws-kms`: one KMS key per initiative (boto3, any KMS-compatible endpoint); KMS does the wrapping with
  an encryption context; destruction schedules the key's deletion.

Each provider also gives the audit key, the HMAC key of the audit log's chain (tenants/audit.py). It is
derived, never stored, so the database holds nothing that forges an event: `local` derives it from the
master key with HKDF-SHA256 and a label of its own (independent of every KEK); `aws-kms` asks a KMS HMAC
key (created on first use under an alias) for the MAC of that label, a deterministic value that only
someone allowed to use that KMS key can compute. Either way one call per process, kept in memory.

The provider is chosen by configuration (KEY_PROVIDER), never by code changes.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path
from typing import ClassVar, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# The label the audit key is derived from; a new label is a new key (and a new chain).
AUDIT_KEY_LABEL = b"eci-platform audit log chain v1"


class KeyProviderError(RuntimeError):
    """The provider refused or failed: a wrong, unknown or destroyed key, or an unreachable service."""


class KeyProvider(Protocol):
    name: str

    def create_kek(self, *, label: str) -> str:
        """Create a new KEK; returns its reference (a key id, never key material)."""

    def wrap(self, kek_ref: str, data_key: bytes, *, context: dict[str, str]) -> bytes:
        """Encrypt a data key under the KEK, bound to `context`."""

    def unwrap(self, kek_ref: str, wrapped: bytes, *, context: dict[str, str]) -> bytes:
        """Decrypt a wrapped data key; fails on any other KEK or context."""

    def destroy_kek(self, kek_ref: str) -> None:
        """Destroy (or schedule the destruction of) the KEK; afterwards nothing it wrapped unwraps."""

    def audit_key(self) -> bytes:
        """The 32-byte HMAC key of the audit log's chain: the same in every process and over time."""


def _context_bytes(context: dict[str, str]) -> bytes:
    return "\x1f".join(f"{key}={context[key]}" for key in sorted(context)).encode()


class LocalKeyProvider:
    name = "local"
    _NONCE = 12

    def __init__(self, master_key: bytes, keystore: Path) -> None:
        if len(master_key) != 32:
            raise ImproperlyConfigured("The local master key must be 32 bytes (256 bits).")
        self._master = AESGCM(master_key)
        self._audit_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=AUDIT_KEY_LABEL).derive(
            master_key
        )
        self._keystore = keystore
        keystore.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, kek_ref: str) -> Path:
        if not kek_ref.startswith("local:") or not kek_ref[6:].isalnum():
            raise KeyProviderError("Malformed local key reference.")
        return self._keystore / f"{kek_ref[6:]}.kek"

    def create_kek(self, *, label: str) -> str:
        kek_ref = f"local:{secrets.token_hex(16)}"
        nonce = os.urandom(self._NONCE)
        sealed = nonce + self._master.encrypt(nonce, AESGCM.generate_key(256), kek_ref.encode())
        path = self._path(kek_ref)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as key_file:
            key_file.write(sealed)
            key_file.flush()
            os.fsync(key_file.fileno())
        return kek_ref

    def _kek(self, kek_ref: str) -> AESGCM:
        try:
            sealed = self._path(kek_ref).read_bytes()
        except FileNotFoundError:
            raise KeyProviderError(
                "The key-encryption key does not exist (destroyed or never created)."
            ) from None
        try:
            return AESGCM(
                self._master.decrypt(sealed[: self._NONCE], sealed[self._NONCE :], kek_ref.encode())
            )
        except InvalidTag:
            raise KeyProviderError("The key-encryption key does not open with this master key.") from None

    def wrap(self, kek_ref: str, data_key: bytes, *, context: dict[str, str]) -> bytes:
        nonce = os.urandom(self._NONCE)
        return nonce + self._kek(kek_ref).encrypt(nonce, data_key, _context_bytes(context))

    def unwrap(self, kek_ref: str, wrapped: bytes, *, context: dict[str, str]) -> bytes:
        try:
            return self._kek(kek_ref).decrypt(
                wrapped[: self._NONCE], wrapped[self._NONCE :], _context_bytes(context)
            )
        except InvalidTag:
            raise KeyProviderError("The data key does not unwrap with this key and context.") from None

    def destroy_kek(self, kek_ref: str) -> None:
        path = self._path(kek_ref)
        if not path.exists():
            return
        # Overwrite before unlinking; on copy-on-write or journalled storage the old blocks may survive,
        # which is why the master key must also be rotated when a machine's disks are retired.
        size = path.stat().st_size
        with open(path, "r+b") as key_file:
            key_file.write(os.urandom(size))
            key_file.flush()
            os.fsync(key_file.fileno())
        path.unlink()

    def audit_key(self) -> bytes:
        return self._audit_key


class AwsKmsKeyProvider:
    name = "aws-kms"
    # Audit keys this process has derived, by region and KMS key: kept when the provider is rebuilt, so
    # a running process can still record (a KMS outage, say) once it has had the key.
    _audit_keys: ClassVar[dict[tuple[str, str], bytes]] = {}

    def __init__(
        self,
        *,
        endpoint_url: str | None,
        region: str,
        deletion_window_days: int,
        audit_key_alias: str = "alias/eci-platform-audit-log",
    ) -> None:
        import boto3

        self._client = boto3.client("kms", endpoint_url=endpoint_url or None, region_name=region)
        self._deletion_window_days = deletion_window_days
        self._audit_key_alias = audit_key_alias
        self._audit_key_id = (region, audit_key_alias)

    def create_kek(self, *, label: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            created = self._client.create_key(
                Description=f"ECI platform key-encryption key: {label}",
                KeyUsage="ENCRYPT_DECRYPT",
                KeySpec="SYMMETRIC_DEFAULT",
                Tags=[{"TagKey": "eci-platform", "TagValue": label}],
            )
        except (BotoCoreError, ClientError) as error:
            raise KeyProviderError(f"KMS refused to create a key: {type(error).__name__}") from None
        return f"aws-kms:{created['KeyMetadata']['Arn']}"

    @staticmethod
    def _key_id(kek_ref: str) -> str:
        if not kek_ref.startswith("aws-kms:"):
            raise KeyProviderError("Malformed KMS key reference.")
        return kek_ref[len("aws-kms:") :]

    def wrap(self, kek_ref: str, data_key: bytes, *, context: dict[str, str]) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self._client.encrypt(
                KeyId=self._key_id(kek_ref), Plaintext=data_key, EncryptionContext=context
            )
        except (BotoCoreError, ClientError) as error:
            raise KeyProviderError(f"KMS refused to wrap: {type(error).__name__}") from None
        return bytes(answer["CiphertextBlob"])

    def unwrap(self, kek_ref: str, wrapped: bytes, *, context: dict[str, str]) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self._client.decrypt(
                KeyId=self._key_id(kek_ref), CiphertextBlob=wrapped, EncryptionContext=context
            )
        except (BotoCoreError, ClientError) as error:
            raise KeyProviderError(f"KMS refused to unwrap: {type(error).__name__}") from None
        return bytes(answer["Plaintext"])

    def destroy_kek(self, kek_ref: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        # The bare key id (the ARN's last part) is accepted by every KMS-compatible service here.
        key_id = self._key_id(kek_ref).rsplit("/", 1)[-1]
        try:
            self._client.disable_key(KeyId=key_id)  # unusable at once; deleted after the waiting period
            self._client.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=self._deletion_window_days)
        except self._client.exceptions.KMSInvalidStateException:
            return  # already pending deletion
        except (BotoCoreError, ClientError) as error:
            raise KeyProviderError(f"KMS refused to destroy the key: {type(error).__name__}") from None

    def audit_key(self) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        known = self._audit_keys.get(self._audit_key_id)
        if known is not None:
            return known
        try:
            try:
                key = self._audit_mac()
            except self._client.exceptions.NotFoundException:
                self._audit_kms_key_create()
                key = self._audit_mac()
        except (BotoCoreError, ClientError) as error:
            raise KeyProviderError(f"KMS refused the audit key: {type(error).__name__}") from None
        self._audit_keys[self._audit_key_id] = key
        return key

    def _audit_mac(self) -> bytes:
        answer = self._client.generate_mac(
            KeyId=self._audit_key_alias, Message=AUDIT_KEY_LABEL, MacAlgorithm="HMAC_SHA_256"
        )
        return bytes(answer["Mac"])

    def _audit_kms_key_create(self) -> None:
        if not self._audit_key_alias.startswith("alias/"):
            raise KeyProviderError("The configured audit key does not exist in KMS.")
        key_id = self._client.create_key(
            Description="ECI platform audit log chain (HMAC)",
            KeyUsage="GENERATE_VERIFY_MAC",
            KeySpec="HMAC_256",
            Tags=[{"TagKey": "eci-platform", "TagValue": "audit-log"}],
        )["KeyMetadata"]["KeyId"]
        try:
            self._client.create_alias(AliasName=self._audit_key_alias, TargetKeyId=key_id)
        except self._client.exceptions.AlreadyExistsException:
            # Another process created it first: use that one, drop ours.
            self._client.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=self._deletion_window_days)


def _local_master_key() -> bytes:
    encoded = settings.LOCAL_MASTER_KEY
    if not encoded and settings.LOCAL_MASTER_KEY_FILE:
        encoded = Path(settings.LOCAL_MASTER_KEY_FILE).read_text().strip()
    if not encoded:
        raise ImproperlyConfigured("KEY_PROVIDER=local needs LOCAL_MASTER_KEY or LOCAL_MASTER_KEY_FILE.")
    try:
        return base64.b64decode(encoded, validate=True)
    except ValueError:
        raise ImproperlyConfigured("The local master key must be 32 bytes in base64.") from None


_provider: KeyProvider | None = None


def key_provider() -> KeyProvider:
    """The configured provider, built once per process."""
    global _provider
    if _provider is None:
        if settings.KEY_PROVIDER == "local":
            _provider = LocalKeyProvider(_local_master_key(), Path(settings.LOCAL_KEYSTORE_DIR))
        elif settings.KEY_PROVIDER == "aws-kms":
            _provider = AwsKmsKeyProvider(
                endpoint_url=settings.AWS_KMS_ENDPOINT_URL,
                region=settings.AWS_REGION,
                deletion_window_days=settings.AWS_KMS_DELETION_WINDOW_DAYS,
                audit_key_alias=settings.AWS_KMS_AUDIT_KEY,
            )
        else:
            raise ImproperlyConfigured(
                f"Unknown KEY_PROVIDER {settings.KEY_PROVIDER!r}: use local or aws-kms."
            )
    return _provider


def key_provider_reset() -> None:
    """Forget the built provider (tests switch providers)."""
    global _provider
    _provider = None
