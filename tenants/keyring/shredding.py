"""Crypto-shredding: destroying an initiative's keys is what makes its statements unreadable, in backups
too (dropping the schema alone is not enough). Audited with key ids, never key material."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from tenants.audit import audit_record
from tenants.keyring.keys import (
    process_key_cache,
)
from tenants.keyring.providers import KeyProviderError
from tenants.keyring.rotation import initiative_row_lock, kek_destroy
from tenants.models import (
    DataKey,
    DataKeyState,
    Initiative,
    KeyEncryptionKey,
)


def initiative_keys_destroy(initiative: Initiative, *, actor: str, reason: str) -> dict[str, object]:
    """Destroy every key of the initiative: all data key versions of both purposes and every KEK. From
    then on nothing of the initiative decrypts and no index digest can be recomputed, in any backup.

    Other processes drop their cached copies within KEY_CACHE_SECONDS; shredding comes after the
    initiative has stopped collecting, when no process writes for it. If the provider fails for a KEK,
    the failure is audited and raised; running the service again retries what is left."""
    with transaction.atomic():
        initiative_row_lock(initiative)
        keys = list(
            DataKey.objects.select_for_update()
            .filter(initiative=initiative)
            .exclude(state=DataKeyState.DESTROYED)
        )
        now = timezone.now()
        DataKey.objects.filter(pk__in=[key.pk for key in keys]).update(
            state=DataKeyState.DESTROYED, wrapped=b"", destroyed_at=now
        )
        keks = list(
            KeyEncryptionKey.objects.select_for_update().filter(
                initiative=initiative, destroyed_at__isnull=True
            )
        )
        KeyEncryptionKey.objects.filter(pk__in=[kek.pk for kek in keks], retired_at__isnull=True).update(
            retired_at=now
        )
        audit_record(
            actor=actor,
            action="key.shred_started",
            initiative=initiative,
            reason=reason,
            data_keys=[f"{key.purpose}:v{key.version}" for key in keys],
            kek_ids=[kek.pk for kek in keks],
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
    }
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
