"""Key rotation at three levels; every key event is audited with key ids and versions, never key
material.

1. `kek_rotate`: rewrap every data key under a new KEK and destroy the old KEK. No record is touched;
   it takes milliseconds whatever the number of records.
2. `data_key_announce` then `data_key_promote`: a new version is first `pending` (every process can
   already open it) and becomes `primary` only after KEY_PROPAGATION_SECONDS, longer than any process
   caches its view of the keys; the old primary becomes `decrypt-only`. No downtime.
3. `reencryption_request` here, and the sweep in `tenants.keyring.reencryption`: every sealed record (or
   index digest) on an older version moves to the primary one, then the unused versions are destroyed.

`initiative_keys_rotate` starts all three, as `rotate_keys` asks. One rotation at a time per initiative
(the initiative's row is the lock). Crypto-shredding is in `tenants.keyring.shredding`.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tenants.audit import audit_record
from tenants.keyring.keys import (
    current_kek,
    data_key_create,
    process_key_cache,
    wrap_context,
)
from tenants.keyring.providers import key_provider
from tenants.models import (
    DataKey,
    DataKeyState,
    Initiative,
    KeyEncryptionKey,
    KeyPurpose,
    ReencryptionJob,
    ReencryptionJobState,
)
from workers.base import task_send

logger = logging.getLogger(__name__)

UNFINISHED_JOB_STATES = (ReencryptionJobState.QUEUED, ReencryptionJobState.RUNNING)


class RotationError(RuntimeError):
    pass


def initiative_row_lock(initiative: Initiative) -> None:
    Initiative.objects.select_for_update().filter(pk=initiative.pk).first()


# -- level 1: a new key-encryption key -------------------------------------------------------------------


def kek_rotate(initiative: Initiative, *, actor: str) -> KeyEncryptionKey:
    """Rewrap every live data key of `initiative` under a new KEK, then destroy the old KEK."""
    provider = key_provider()
    new_reference = provider.create_kek(label=initiative.schema_name)
    try:
        with transaction.atomic():
            initiative_row_lock(initiative)  # no data key is announced under the old KEK meanwhile
            old_keks = list(
                KeyEncryptionKey.objects.select_for_update().filter(
                    initiative=initiative, retired_at__isnull=True
                )
            )
            new_kek = KeyEncryptionKey.objects.create(
                initiative=initiative, provider=provider.name, reference=new_reference
            )
            live = DataKey.objects.select_for_update().filter(initiative=initiative)
            rewrapped = 0
            for key in live.exclude(state=DataKeyState.DESTROYED).select_related("kek"):
                context = wrap_context(initiative.pk, key.purpose, key.version)
                material = provider.unwrap(key.kek.reference, bytes(key.wrapped), context=context)
                key.wrapped = provider.wrap(new_reference, material, context=context)
                key.kek = new_kek
                key.save(update_fields=["wrapped", "kek"])
                rewrapped += 1
            # Destroyed versions keep no wrapped key; their rows now point at the live KEK too.
            live.filter(state=DataKeyState.DESTROYED).update(kek=new_kek)
            KeyEncryptionKey.objects.filter(pk__in=[kek.pk for kek in old_keks]).update(
                retired_at=timezone.now()
            )
            audit_record(
                actor=actor,
                action="key.kek_rotated",
                initiative=initiative,
                new_kek_id=new_kek.pk,
                old_kek_ids=[kek.pk for kek in old_keks],
                data_keys_rewrapped=rewrapped,
            )
    except BaseException:
        provider.destroy_kek(new_reference)  # the new KEK never came into use
        raise
    # Only once the new wrapping is committed may the old KEK go.
    for kek in old_keks:
        kek_destroy(kek, actor=actor)
    return new_kek


def kek_destroy(kek: KeyEncryptionKey, *, actor: str) -> None:
    key_provider().destroy_kek(kek.reference)
    KeyEncryptionKey.objects.filter(pk=kek.pk).update(destroyed_at=timezone.now())
    audit_record(actor=actor, action="key.kek_destroyed", initiative=kek.initiative, kek_id=kek.pk)


# -- level 2: a new primary data key, in two phases ------------------------------------------------------


def rotation_blockers(initiative: Initiative, purpose: str | None = None) -> list[str]:
    """Why a new data key version (of `purpose`, or of any) cannot be announced now; empty when it can."""
    pending = DataKey.objects.filter(initiative=initiative, state=DataKeyState.PENDING)
    if purpose is not None:
        pending = pending.filter(purpose=purpose)
    blockers = [
        f"a {pending_purpose} key version is already pending"
        for pending_purpose in pending.values_list("purpose", flat=True).distinct()
    ]
    unfinished = ReencryptionJob.objects.filter(initiative=initiative, state__in=UNFINISHED_JOB_STATES)
    blockers += [
        f"re-encryption job {job_id} is not finished" for job_id in unfinished.values_list("pk", flat=True)
    ]
    return blockers


def data_key_announce(initiative: Initiative, purpose: str, *, actor: str) -> DataKey:
    """Phase one: a new version in the `pending` state, not yet written with."""
    with transaction.atomic():
        initiative_row_lock(initiative)  # one rotation at a time
        blockers = rotation_blockers(initiative, purpose)
        if blockers:
            raise RotationError(f"Cannot rotate now: {'; '.join(blockers)}.")
        key = data_key_create(initiative.pk, purpose, DataKeyState.PENDING, current_kek(initiative.pk))
        audit_record(
            actor=actor,
            action="key.created",
            initiative=initiative,
            purpose=purpose,
            version=key.version,
            state=key.state,
        )
    return key


def promotion_due_at(key: DataKey) -> datetime.datetime:
    return key.created_at + datetime.timedelta(seconds=settings.KEY_PROPAGATION_SECONDS)


def data_key_promote(data_key_id: int, *, actor: str) -> DataKey | None:
    """Phase two: the pending version becomes primary, the old primary decrypt-only. Does nothing before
    the propagation time, or when it has already happened (a repeated message)."""
    with transaction.atomic():
        key = DataKey.objects.select_for_update().select_related("initiative").filter(pk=data_key_id).first()
        if key is None or key.state != DataKeyState.PENDING or timezone.now() < promotion_due_at(key):
            return key
        now = timezone.now()
        previous = list(
            DataKey.objects.select_for_update().filter(
                initiative_id=key.initiative_id, purpose=key.purpose, state=DataKeyState.PRIMARY
            )
        )
        DataKey.objects.filter(pk__in=[old.pk for old in previous]).update(
            state=DataKeyState.DECRYPT_ONLY, retired_at=now
        )
        key.state, key.primary_since = DataKeyState.PRIMARY, now
        key.save(update_fields=["state", "primary_since"])
        audit_record(
            actor=actor,
            action="key.primary_changed",
            initiative=key.initiative,
            purpose=key.purpose,
            version=key.version,
            previous_versions=[old.version for old in previous],
        )
    process_key_cache.forget_initiative(key.initiative_id)
    return key


# -- level 3: the re-encryption sweep --------------------------------------------------------------------


def sweep_may_start_at(target: DataKey) -> datetime.datetime:
    """No process writes an older version after this: the switch, plus the time any process may still
    hold the old primary in its cache, plus the slack for a write already under way."""
    slack = datetime.timedelta(seconds=settings.KEY_CACHE_SECONDS + settings.KEY_WRITE_MARGIN_SECONDS)
    switched = target.primary_since or promotion_due_at(target)
    return switched + slack


def reencryption_request(
    initiative: Initiative, purpose: str, target: DataKey, *, actor: str
) -> ReencryptionJob:
    """A sweep of `purpose` to `target`; it runs once the target has been primary long enough."""
    job = ReencryptionJob.objects.create(
        initiative=initiative,
        purpose=purpose,
        target_version=target.version,
        requested_by=actor,
        not_before=sweep_may_start_at(target),
    )
    audit_record(
        actor=actor,
        action="key.sweep_requested",
        initiative=initiative,
        purpose=purpose,
        target_version=target.version,
        job_id=job.pk,
    )
    return job


# -- the whole rotation, as `rotate_keys` starts it ------------------------------------------------------


@dataclass
class RotationStarted:
    kek_id: int
    announced: dict[str, int]  # purpose -> the new version, pending until promoted
    jobs: list[int]


def initiative_keys_rotate(initiative: Initiative, *, actor: str, reencrypt: bool) -> RotationStarted:
    """Rewrap under a new KEK, announce a new data key for each purpose (promoted by a worker after the
    propagation time) and, with `reencrypt`, request the sweeps that retire the old versions (run one
    after the other by the workers). Refused before anything changes if a rotation is under way."""
    blockers = rotation_blockers(initiative)
    if blockers:
        raise RotationError(f"Cannot rotate now: {'; '.join(blockers)}.")
    kek = kek_rotate(initiative, actor=actor)
    announced: dict[str, int] = {}
    jobs: list[int] = []
    with transaction.atomic():
        keys = [data_key_announce(initiative, purpose, actor=actor) for purpose in KeyPurpose]
        if reencrypt:
            jobs = [reencryption_request(initiative, key.purpose, key, actor=actor).pk for key in keys]
    for key in keys:
        announced[key.purpose] = key.version
        task_send("keys.promote_data_key", key.pk, countdown=settings.KEY_PROPAGATION_SECONDS)
    for job in ReencryptionJob.objects.filter(pk__in=jobs):
        delay = max(0.0, (job.not_before - timezone.now()).total_seconds())
        task_send("keys.reencrypt", job.pk, countdown=delay)
    return RotationStarted(kek_id=kek.pk, announced=announced, jobs=jobs)
