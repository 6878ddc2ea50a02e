"""Crypto-shredding: destroying an initiative's keys is what makes its statements unreadable, in backups
too (dropping the schema alone is not enough). Audited with key ids, never key material."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from tenants.audit import audit_record
from tenants.keyring.keys import data_key, data_key_create, process_key_cache, wrap_context
from tenants.keyring.providers import KeyProviderError, key_provider
from tenants.keyring.registry import SealedTable
from tenants.keyring.rotation import initiative_row_lock, kek_destroy
from tenants.keyring.sealing import open_with, seal_with, sealed_version
from tenants.models import (
    DataKey,
    DataKeyState,
    Initiative,
    KeyEncryptionKey,
    KeyPurpose,
)

RESEAL_BATCH = 500


def initiative_keys_destroy(initiative: Initiative, *, actor: str, reason: str) -> dict[str, object]:
    """Destroy every key of the initiative: all data key versions of both purposes and every KEK. From
    then on nothing of the initiative decrypts and no index digest can be recomputed, in any backup.

    Other processes drop their cached copies within KEY_CACHE_SECONDS; shredding comes after the
    initiative has stopped collecting, when no process writes for it. If the provider fails for a KEK,
    the failure is audited and raised; running the service again retries what is left."""
    return _keys_destroy(initiative, actor=actor, reason=reason, kept_keys=[], kept_kek=None)


def initiative_keys_destroy_keeping(
    initiative: Initiative, *, tables: list[SealedTable], keep_index: bool, actor: str, reason: str
) -> dict[str, object]:
    """Destroy the keys of what goes while the records of `tables` stay readable: those are first
    re-sealed under a new data key wrapped by a new KEK (and with `keep_index` the duplicate-index keys
    are rewrapped under it), then every other data key and every other KEK is destroyed. A backup from
    before holds the old wrapped keys only, whose KEKs are gone, so it opens nothing that went.

    The statements going first keep the e-mail addresses of REQ-19 this way; the addresses going first
    (an early close brings their deadline forward) keep the statements and their index.

    Safe to run again after a crash at any point: a re-run makes another fresh key and moves the kept
    records to it, and the destruction retries whatever is left."""
    with initiative:
        tables = [table for table in tables if table.model._default_manager.exists()]
    if not tables:
        return initiative_keys_destroy(initiative, actor=actor, reason=reason)
    provider = key_provider()
    reference = provider.create_kek(label=initiative.schema_name)
    try:
        with transaction.atomic():
            initiative_row_lock(initiative)
            kept_kek = KeyEncryptionKey.objects.create(
                initiative=initiative, provider=provider.name, reference=reference
            )
            DataKey.objects.filter(
                initiative=initiative,
                purpose=KeyPurpose.PERSONAL_DATA,
                state__in=[DataKeyState.PRIMARY, DataKeyState.PENDING],
            ).update(state=DataKeyState.DECRYPT_ONLY, retired_at=timezone.now())
            kept = [data_key_create(initiative.pk, KeyPurpose.PERSONAL_DATA, DataKeyState.PRIMARY, kept_kek)]
            if keep_index:
                kept += _rewrap(initiative, KeyPurpose.INDEX, kept_kek)
    except BaseException:
        provider.destroy_kek(reference)  # never came into use
        raise
    process_key_cache.forget_initiative(initiative.pk)
    resealed = sum(_reseal(initiative, table, kept[0]) for table in tables)
    return _keys_destroy(
        initiative, actor=actor, reason=reason, kept_keys=kept, kept_kek=kept_kek, resealed=resealed
    )


def _rewrap(initiative: Initiative, purpose: str, kek: KeyEncryptionKey) -> list[DataKey]:
    """Wrap the live keys of `purpose` under `kek` (their material unchanged)."""
    provider = key_provider()
    keys = list(
        DataKey.objects.select_for_update()
        .select_related("kek")
        .filter(initiative=initiative, purpose=purpose)
        .exclude(state=DataKeyState.DESTROYED)
    )
    for key in keys:
        context = wrap_context(initiative.pk, key.purpose, key.version)
        material = provider.unwrap(key.kek.reference, bytes(key.wrapped), context=context)
        key.wrapped = provider.wrap(kek.reference, material, context=context)
        key.kek = kek
        key.save(update_fields=["wrapped", "kek"])
    return keys


def _reseal(initiative: Initiative, table: SealedTable, kept: DataKey) -> int:
    """Move every record of `table` to the kept key version, in batches of one transaction each."""
    target = data_key(initiative.pk, KeyPurpose.PERSONAL_DATA, kept.version)
    model, version_field, sealed_field = table.model, table.version_field, table.sealed_field
    moved = 0
    with initiative:
        while True:
            with transaction.atomic():
                batch = list(
                    model._default_manager.select_for_update()
                    .exclude(**{version_field: kept.version})
                    .order_by("pk")[:RESEAL_BATCH]
                )
                if not batch:
                    return moved
                for record in batch:
                    blob = bytes(getattr(record, sealed_field))
                    scope = getattr(record, table.country_field)
                    old = data_key(initiative.pk, KeyPurpose.PERSONAL_DATA, sealed_version(blob))
                    plaintext = open_with(old, record.pk, scope, blob)
                    model._default_manager.filter(pk=record.pk).update(
                        **{
                            sealed_field: seal_with(target, record.pk, scope, plaintext),
                            version_field: kept.version,
                        }
                    )
                moved += len(batch)


def _keys_destroy(
    initiative: Initiative,
    *,
    actor: str,
    reason: str,
    kept_keys: list[DataKey],
    kept_kek: KeyEncryptionKey | None,
    resealed: int = 0,
) -> dict[str, object]:
    with transaction.atomic():
        initiative_row_lock(initiative)
        live_keys = DataKey.objects.select_for_update().filter(initiative=initiative)
        live_keys = live_keys.exclude(pk__in=[key.pk for key in kept_keys])
        keys = list(live_keys.exclude(state=DataKeyState.DESTROYED))
        now = timezone.now()
        DataKey.objects.filter(pk__in=[key.pk for key in keys]).update(
            state=DataKeyState.DESTROYED, wrapped=b"", destroyed_at=now
        )
        live_keks = KeyEncryptionKey.objects.select_for_update().filter(
            initiative=initiative, destroyed_at__isnull=True
        )
        if kept_kek is not None:
            live_keks = live_keks.exclude(pk=kept_kek.pk)
        keks = list(live_keks)
        KeyEncryptionKey.objects.filter(pk__in=[kek.pk for kek in keks], retired_at__isnull=True).update(
            retired_at=now
        )
        kept: dict[str, object] = {}
        if kept_keys and kept_kek is not None:
            kept = {
                "kept_data_keys": [f"{key.purpose}:v{key.version}" for key in kept_keys],
                "kept_kek": kept_kek.pk,
            }
        audit_record(
            actor=actor,
            action="key.shred_started",
            initiative=initiative,
            reason=reason,
            data_keys=[f"{key.purpose}:v{key.version}" for key in keys],
            kek_ids=[kek.pk for kek in keks],
            **kept,
        )
    process_key_cache.forget_initiative(initiative.pk)
    failed: list[int] = []
    for kek in keks:
        try:
            kek_destroy(kek, actor=actor)
        except KeyProviderError:
            failed.append(kek.pk)
    summary: dict[str, object] = {
        "data_keys_destroyed": [f"{key.purpose}:v{key.version}" for key in keys],
        "keks_destroyed": [kek.pk for kek in keks if kek.pk not in failed],
        "keks_failed": failed,
        **kept,
    }
    if kept:
        summary["records_resealed"] = resealed
    audit_record(
        actor=actor,
        action="key.shredded" if not failed else "key.shred_incomplete",
        initiative=initiative,
        reason=reason,
        **summary,
    )
    if failed:
        raise KeyProviderError(f"The provider did not destroy KEKs {failed}; run the shredding again.")
    return summary
