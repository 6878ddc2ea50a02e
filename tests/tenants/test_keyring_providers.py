"""The key providers: `local` (master key and key store files) and `aws-kms` against a KMS-compatible
endpoint that these tests start (moto's server, over HTTP on loopback)."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from collection.models import Statement
from collection.sealed import personal_data_decode
from collection.services import statement_record
from tenants.keyring.keys import KeyUnavailableError, process_key_cache
from tenants.keyring.providers import (
    AwsKmsKeyProvider,
    KeyProviderError,
    LocalKeyProvider,
)
from tenants.keyring.rotation import kek_rotate
from tenants.keyring.sealing import open_sealed
from tenants.keyring.shredding import initiative_keys_destroy
from tenants.models import KeyEncryptionKey
from tenants.onboarding import initiative_onboard
from tests.conftest import onboarding_request

CONTEXT = {"initiative": "1", "purpose": "personal", "version": "1"}


def test_local_provider_wraps_and_unwraps_bound_to_its_context(tmp_path: Path) -> None:
    provider = LocalKeyProvider(os.urandom(32), tmp_path)
    kek = provider.create_kek(label="t")
    data_key = os.urandom(32)
    wrapped = provider.wrap(kek, data_key, context=CONTEXT)
    assert data_key not in wrapped
    assert provider.unwrap(kek, wrapped, context=CONTEXT) == data_key
    with pytest.raises(KeyProviderError):
        provider.unwrap(kek, wrapped, context={**CONTEXT, "version": "2"})
    with pytest.raises(KeyProviderError):
        provider.unwrap(provider.create_kek(label="other"), wrapped, context=CONTEXT)


def test_local_kek_files_are_private_and_useless_without_the_master_key(tmp_path: Path) -> None:
    provider = LocalKeyProvider(os.urandom(32), tmp_path)
    kek = provider.create_kek(label="t")
    wrapped = provider.wrap(kek, os.urandom(32), context=CONTEXT)
    key_file = tmp_path / f"{kek.split(':', 1)[1]}.kek"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    other_master = LocalKeyProvider(os.urandom(32), tmp_path)
    with pytest.raises(KeyProviderError, match="master key"):
        other_master.unwrap(kek, wrapped, context=CONTEXT)


def test_local_destruction_removes_the_kek_for_good(tmp_path: Path) -> None:
    provider = LocalKeyProvider(os.urandom(32), tmp_path)
    kek = provider.create_kek(label="t")
    wrapped = provider.wrap(kek, os.urandom(32), context=CONTEXT)
    provider.destroy_kek(kek)
    provider.destroy_kek(kek)  # twice is fine
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(KeyProviderError, match="does not exist"):
        provider.unwrap(kek, wrapped, context=CONTEXT)


@pytest.mark.parametrize("reference", ["local:../../etc/passwd", "local:", "aws-kms:x", "local:a/b"])
def test_local_provider_refuses_malformed_references(tmp_path: Path, reference: str) -> None:
    with pytest.raises(KeyProviderError):
        LocalKeyProvider(os.urandom(32), tmp_path).unwrap(reference, b"x" * 40, context=CONTEXT)


def test_the_development_master_key_is_created_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eci_platform.embedded import ensure_local_master_key

    monkeypatch.setenv("ECI_DATA_DIR", str(tmp_path))
    key_file = ensure_local_master_key()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(base64.b64decode(key_file.read_text())) == 32
    assert ensure_local_master_key().read_text() == key_file.read_text()  # created once


# -- aws-kms against a KMS-compatible endpoint -------------------------------------------------------------


def test_kms_provider_wraps_with_an_encryption_context(kms: AwsKmsKeyProvider) -> None:
    kek = kms.create_kek(label="t")
    data_key = os.urandom(32)
    wrapped = kms.wrap(kek, data_key, context=CONTEXT)
    assert kms.unwrap(kek, wrapped, context=CONTEXT) == data_key
    with pytest.raises(KeyProviderError):
        kms.unwrap(kek, wrapped, context={**CONTEXT, "initiative": "2"})


def test_kms_destruction_disables_the_key_and_schedules_its_deletion(kms: AwsKmsKeyProvider) -> None:
    kek = kms.create_kek(label="t")
    wrapped = kms.wrap(kek, os.urandom(32), context=CONTEXT)
    kms.destroy_kek(kek)
    kms.destroy_kek(kek)  # already pending deletion: fine
    key_id = kek.split(":", 1)[1]
    metadata = kms._client.describe_key(KeyId=key_id)["KeyMetadata"]
    # KMS refuses every use of a key in this state (the test server does not model that refusal; the
    # platform does not depend on it either: shredding also erases the wrapped data keys, see below).
    assert metadata["KeyState"] == "PendingDeletion" and metadata.get("DeletionDate")
    assert not metadata["Enabled"] and wrapped


@pytest.mark.django_db
def test_an_initiative_on_kms_seals_rotates_and_shreds(kms: AwsKmsKeyProvider) -> None:
    initiative = initiative_onboard(onboarding_request("on-kms", 600001), actor="t", provision="now")
    kek = KeyEncryptionKey.objects.get(initiative=initiative)
    assert kek.provider == "aws-kms" and kek.reference.startswith("aws-kms:arn:")
    data = {
        "first_names": "Eva",
        "family_names": "Novak",
        "document_type": "id.card",
        "document_number": "X1",
    }
    with initiative:
        record = statement_record(country="SI", personal_data=data, form_revision="t")
        row = Statement.objects.get(pk=record.pk)

    kek_rotate(initiative, actor="t")
    process_key_cache.clear()
    opened = open_sealed(initiative.pk, row.pk, "SI", bytes(row.sealed_personal_data))
    assert personal_data_decode(opened) == data
    old_state = kms._client.describe_key(KeyId=kek.reference.split(":", 1)[1])["KeyMetadata"]["KeyState"]
    assert old_state == "PendingDeletion"

    current = KeyEncryptionKey.objects.get(initiative=initiative, destroyed_at__isnull=True)
    initiative_keys_destroy(initiative, actor="t", reason="test")
    with pytest.raises(KeyUnavailableError):
        open_sealed(initiative.pk, row.pk, "SI", bytes(row.sealed_personal_data))
    key_id = current.reference.split(":", 1)[1]
    assert kms._client.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
