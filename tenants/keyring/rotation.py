"""Key rotation at three levels, and crypto-shredding. Every key event is audited with key ids and
versions, never key material.

1. `kek_rotate`: rewrap every data key under a new KEK. No record is touched; it takes milliseconds
   whatever the number of records.
2. `data_key_announce` then `data_key_promote`: a new version is first `pending` (every process can
   already open it), and becomes `primary` only after KEY_PROPAGATION_SECONDS, longer than any process
   caches its view of the keys; the old primary becomes `decrypt-only`. No downtime.
3. `reencryption_run`: a sweep that moves every sealed record (or index digest) to the primary version in
   resumable batches, with a checkpoint and a lease on its job row, then destroys the versions no record
   uses any more.
"""

from __future__ import annotations

import datetime
import io
import logging
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from tenants.db import connection
from tenants.keyring.index import digest_with
from tenants.keyring.keys import (
    UnwrappedKey,
    current_kek,
    data_key,
    data_key_create,
    process_key_cache,
    wrap_context,
)
from tenants.keyring.providers import key_provider
from tenants.keyring.registry import SEALED_TABLES, SealedTable
from tenants.keyring.sealing import open_with, seal_with
from tenants.models import (
    DataKey,
    DataKeyState,
    Initiative,
    KeyEncryptionKey,
    KeyPurpose,
    ReencryptionJob,
    ReencryptionJobState,
)
from tenants.services import audit_record

logger = logging.getLogger(__name__)


_SMALLEST_UUID = uuid.UUID(int=0)


def _lease() -> datetime.timedelta:
    """How long a sweep's claim lasts without renewal (renewed after every batch)."""
    return datetime.timedelta(seconds=settings.REENCRYPTION_LEASE_SECONDS)


class RotationError(RuntimeError):
    pass


# -- level 1: a new key-encryption key -------------------------------------------------------------------


def kek_rotate(initiative: Initiative, *, actor: str) -> KeyEncryptionKey:
    """Rewrap every live data key of `initiative` under a new KEK, then destroy the old KEK."""
    provider = key_provider()
    new_reference = provider.create_kek(label=initiative.schema_name)
    with transaction.atomic():
        old_keks = list(
            KeyEncryptionKey.objects.select_for_update().filter(
                initiative=initiative, retired_at__isnull=True
            )
        )
        new_kek = KeyEncryptionKey.objects.create(
            initiative=initiative, provider=provider.name, reference=new_reference
        )
        live = (
            DataKey.objects.select_for_update()
            .filter(initiative=initiative)
            .exclude(state=DataKeyState.DESTROYED)
        )
        rewrapped = 0
        for key in live.select_related("kek"):
            context = wrap_context(initiative.pk, key.purpose, key.version)
            material = provider.unwrap(key.kek.reference, bytes(key.wrapped), context=context)
            key.wrapped = provider.wrap(new_reference, material, context=context)
            key.kek = new_kek
            key.save(update_fields=["wrapped", "kek"])
            rewrapped += 1
        now = timezone.now()
        KeyEncryptionKey.objects.filter(pk__in=[kek.pk for kek in old_keks]).update(retired_at=now)
        audit_record(
            actor=actor,
            action="key.kek_rotated",
            initiative=initiative,
            new_kek_id=new_kek.pk,
            old_kek_ids=[kek.pk for kek in old_keks],
            data_keys_rewrapped=rewrapped,
        )
    # Only once the new wrapping is committed may the old KEK go.
    for kek in old_keks:
        _kek_destroy(kek, actor=actor)
    return new_kek


def _kek_destroy(kek: KeyEncryptionKey, *, actor: str) -> None:
    key_provider().destroy_kek(kek.reference)
    KeyEncryptionKey.objects.filter(pk=kek.pk).update(destroyed_at=timezone.now())
    audit_record(actor=actor, action="key.kek_destroyed", initiative=kek.initiative, kek_id=kek.pk)


# -- level 2: a new primary data key, in two phases ------------------------------------------------------


def data_key_announce(initiative: Initiative, purpose: str, *, actor: str) -> DataKey:
    """Phase one: a new version in the `pending` state, not yet written with."""
    with transaction.atomic():
        Initiative.objects.select_for_update().get(pk=initiative.pk)  # one rotation at a time
        if DataKey.objects.filter(
            initiative=initiative, purpose=purpose, state=DataKeyState.PENDING
        ).exists():
            raise RotationError(f"A {purpose} key version is already pending for this initiative.")
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


def reencryption_request(
    initiative: Initiative, purpose: str, target: DataKey, *, actor: str
) -> ReencryptionJob:
    """A sweep to `target`, which may start once every process has stopped writing older versions."""
    not_before = promotion_due_at(target) + datetime.timedelta(seconds=settings.KEY_PROPAGATION_SECONDS)
    job = ReencryptionJob.objects.create(
        initiative=initiative,
        purpose=purpose,
        target_version=target.version,
        requested_by=actor,
        not_before=not_before,
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


@dataclass
class SweepOutcome:
    job_id: int
    state: str
    records_done: int
    records_moved: int
    versions_destroyed: list[int]
    retry_in_seconds: float | None = None


def _claim(job_id: int, owner: str) -> bool:
    now = timezone.now()
    claimed = (
        ReencryptionJob.objects.filter(
            pk=job_id, state__in=[ReencryptionJobState.QUEUED, ReencryptionJobState.RUNNING]
        )
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_owner=owner, lease_until=now + _lease(), state=ReencryptionJobState.RUNNING)
    )
    return claimed == 1


def _renew(job: ReencryptionJob, owner: str, **progress: object) -> bool:
    return (
        ReencryptionJob.objects.filter(pk=job.pk, lease_owner=owner).update(
            lease_until=timezone.now() + _lease(), **progress
        )
        == 1
    )


def reencryption_run(
    job_id: int, *, owner: str | None = None, max_batches: int | None = None
) -> SweepOutcome:
    """Run (or resume) a sweep. Safe to call twice: only the holder of the lease works; a finished job
    does nothing. `max_batches` stops early, leaving the lease to expire (tests use it as a crash)."""
    owner = owner or uuid.uuid4().hex
    job = ReencryptionJob.objects.select_related("initiative").get(pk=job_id)
    if job.state in (ReencryptionJobState.FINISHED, ReencryptionJobState.FAILED):
        return _outcome(job)
    wait = (job.not_before - timezone.now()).total_seconds()
    target_row = DataKey.objects.get(
        initiative=job.initiative, purpose=job.purpose, version=job.target_version
    )
    if target_row.state == DataKeyState.PENDING:
        wait = max(wait, (promotion_due_at(target_row) - timezone.now()).total_seconds(), 1.0)
    if target_row.state not in (DataKeyState.PENDING, DataKeyState.PRIMARY):
        return _fail(job, "The target key version is no longer primary.")
    if wait > 0:
        return SweepOutcome(job.pk, job.state, job.records_done, job.records_moved, [], retry_in_seconds=wait)
    if not _claim(job.pk, owner):
        return _outcome(job)  # another worker holds the lease

    job.refresh_from_db()
    initiative = job.initiative
    if job.started_at is None:
        with initiative:
            total = sum(_count(table) for table in SEALED_TABLES)
        ReencryptionJob.objects.filter(pk=job.pk).update(
            started_at=timezone.now(), records_total=total, attempts=job.attempts + 1
        )
        audit_record(
            actor="system",
            action="key.sweep_started",
            initiative=initiative,
            job_id=job.pk,
            purpose=job.purpose,
            target_version=job.target_version,
            records_total=total,
        )
    else:
        ReencryptionJob.objects.filter(pk=job.pk).update(attempts=job.attempts + 1)

    target = data_key(initiative.pk, job.purpose, job.target_version)
    batches = 0
    with initiative:
        for table in SEALED_TABLES:
            checkpoint = job.checkpoint or _SMALLEST_UUID
            while True:
                if max_batches is not None and batches >= max_batches:
                    return _outcome(ReencryptionJob.objects.get(pk=job.pk))
                done, moved, last = _sweep_batch(table, initiative.pk, job.purpose, target, checkpoint)
                batches += 1
                if last is None:
                    break
                checkpoint = last
                job.records_done += done
                job.records_moved += moved
                if not _renew(
                    job,
                    owner,
                    checkpoint=checkpoint,
                    records_done=job.records_done,
                    records_moved=job.records_moved,
                ):
                    logger.warning("re-encryption job %s: lease lost, stopping", job.pk)
                    return _outcome(ReencryptionJob.objects.get(pk=job.pk))
            job.checkpoint = None
        remaining = sum(_count(table, not_version=(job.purpose, target.version)) for table in SEALED_TABLES)
    if remaining:
        # Written with an old version after the sweep passed (a process with a stale view): go again.
        ReencryptionJob.objects.filter(pk=job.pk).update(checkpoint=None, lease_until=None)
        return SweepOutcome(
            job.pk,
            ReencryptionJobState.RUNNING,
            job.records_done,
            job.records_moved,
            [],
            retry_in_seconds=1.0,
        )
    return _finish(job, target.version)


def _finish(job: ReencryptionJob, target_version: int) -> SweepOutcome:
    with transaction.atomic():
        retired = list(
            DataKey.objects.select_for_update()
            .filter(initiative=job.initiative, purpose=job.purpose, state=DataKeyState.DECRYPT_ONLY)
            .exclude(version=target_version)
        )
        now = timezone.now()
        for key in retired:
            key.state, key.wrapped, key.destroyed_at = DataKeyState.DESTROYED, b"", now
            key.save(update_fields=["state", "wrapped", "destroyed_at"])
            audit_record(
                actor="system",
                action="key.destroyed",
                initiative=job.initiative,
                purpose=key.purpose,
                version=key.version,
                reason="no record uses it after the sweep",
            )
        destroyed = [key.version for key in retired]
        ReencryptionJob.objects.filter(pk=job.pk).update(
            state=ReencryptionJobState.FINISHED,
            finished_at=now,
            lease_until=None,
            checkpoint=None,
            versions_destroyed=destroyed,
        )
        audit_record(
            actor="system",
            action="key.sweep_finished",
            initiative=job.initiative,
            job_id=job.pk,
            purpose=job.purpose,
            records_moved=job.records_moved,
            versions_destroyed=destroyed,
        )
    process_key_cache.forget_initiative(job.initiative_id)
    return _outcome(ReencryptionJob.objects.get(pk=job.pk))


def _fail(job: ReencryptionJob, reason: str) -> SweepOutcome:
    ReencryptionJob.objects.filter(pk=job.pk).update(
        state=ReencryptionJobState.FAILED, error=reason[:200], finished_at=timezone.now(), lease_until=None
    )
    audit_record(
        actor="system", action="key.sweep_failed", initiative=job.initiative, job_id=job.pk, reason=reason
    )
    return _outcome(ReencryptionJob.objects.get(pk=job.pk))


def _outcome(job: ReencryptionJob) -> SweepOutcome:
    return SweepOutcome(job.pk, job.state, job.records_done, job.records_moved, list(job.versions_destroyed))


def _count(table: SealedTable, not_version: tuple[str, int] | None = None) -> int:
    sql = f'SELECT count(*) FROM "{table.table}"'  # noqa: S608  (names from our own models)
    params: list[object] = []
    if not_version is not None:
        purpose, version = not_version
        column = table.column(
            "version_field" if purpose == KeyPurpose.PERSONAL_DATA else "digest_version_field"
        )
        sql += f' WHERE "{column}" <> %s'
        params.append(version)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.fetchone()[0])


def _sweep_batch(
    table: SealedTable, initiative_id: int, purpose: str, target: UnwrappedKey, after: uuid.UUID
) -> tuple[int, int, uuid.UUID | None]:
    """Move one batch of records after `after` (keyset pagination by id) in one transaction. Returns
    records looked at, records changed, and the last id (None when there were no more records)."""
    assert table.model._meta.pk is not None
    pk = table.model._meta.pk.column
    blob, version, country = (
        table.column("sealed_field"),
        table.column("version_field"),
        table.column("country_field"),
    )
    digest, digest_version = table.column("digest_field"), table.column("digest_version_field")
    keys: dict[int, UnwrappedKey] = {}

    def key_for(version_number: int) -> UnwrappedKey:
        if version_number not in keys:
            keys[version_number] = data_key(initiative_id, KeyPurpose.PERSONAL_DATA, version_number)
        return keys[version_number]

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f'SELECT "{pk}", "{country}", "{version}", "{blob}", "{digest_version}" FROM "{table.table}" '  # noqa: S608
            f'WHERE "{pk}" > %s ORDER BY "{pk}" LIMIT %s',
            [after, settings.REENCRYPTION_BATCH_SIZE],
        )
        rows = cursor.fetchall()
        if not rows:
            return 0, 0, None
        buffer = io.StringIO()
        changed = 0
        for record_id, record_country, record_version, sealed, record_digest_version in rows:
            if purpose == KeyPurpose.PERSONAL_DATA:
                if record_version == target.version:
                    continue
                plaintext = open_with(key_for(record_version), record_id, record_country, bytes(sealed))
                new_value = seal_with(target, record_id, record_country, plaintext)
                old = record_version
            else:
                if record_digest_version == target.version:
                    continue
                plaintext = open_with(key_for(record_version), record_id, record_country, bytes(sealed))
                new_value = digest_with(target, table.identity(plaintext, record_country))
                old = record_digest_version
            buffer.write(f"{record_id}\t\\\\x{new_value.hex()}\t{old}\n")
            changed += 1
        if changed:
            value_column, version_column = (
                (blob, version) if purpose == KeyPurpose.PERSONAL_DATA else (digest, digest_version)
            )
            cursor.execute(
                "CREATE TEMP TABLE IF NOT EXISTS sweep_batch (id uuid, value bytea, old_version integer) "
                "ON COMMIT DELETE ROWS"
            )
            with cursor.cursor.copy("COPY sweep_batch (id, value, old_version) FROM STDIN") as copy:
                copy.write(buffer.getvalue())
            # Only rows still on the version read: a concurrent change is never overwritten.
            cursor.execute(
                f'UPDATE "{table.table}" AS t SET "{value_column}" = b.value, "{version_column}" = %s '  # noqa: S608
                f'FROM sweep_batch AS b WHERE t."{pk}" = b.id AND t."{version_column}" = b.old_version',
                [target.version],
            )
    return len(rows), changed, rows[-1][0]


# -- crypto-shredding ------------------------------------------------------------------------------------


def initiative_keys_destroy(initiative: Initiative, *, actor: str, reason: str) -> dict[str, object]:
    """Destroy every key of the initiative: all data key versions of both purposes and every KEK. From
    then on nothing of the initiative decrypts and no index digest can be recomputed, in any backup."""
    with transaction.atomic():
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
        KeyEncryptionKey.objects.filter(pk__in=[kek.pk for kek in keks]).update(retired_at=now)
    for kek in keks:
        _kek_destroy(kek, actor=actor)
    process_key_cache.forget_initiative(initiative.pk)
    summary = {
        "data_keys_destroyed": [f"{key.purpose}:v{key.version}" for key in keys],
        "keks_destroyed": [kek.pk for kek in keks],
    }
    audit_record(actor=actor, action="key.shredded", initiative=initiative, reason=reason, **summary)
    return summary


# -- the whole rotation, as `rotate_keys` starts it ------------------------------------------------------


@dataclass
class RotationStarted:
    kek_id: int
    announced: dict[str, int]  # purpose -> the new version, pending until promoted
    jobs: list[int]


def initiative_keys_rotate(initiative: Initiative, *, actor: str, reencrypt: bool) -> RotationStarted:
    """Rewrap under a new KEK, announce a new data key for each purpose (promoted by a worker after
    the propagation time) and, with `reencrypt`, request the sweeps that retire the old versions."""
    from workers.tasks import promote_data_key
    from workers.tasks import reencrypt as reencrypt_task

    kek = kek_rotate(initiative, actor=actor)
    announced: dict[str, int] = {}
    jobs: list[int] = []
    for purpose in KeyPurpose:
        key = data_key_announce(initiative, purpose, actor=actor)
        announced[purpose] = key.version
        promote_data_key.apply_async(args=[key.pk], countdown=settings.KEY_PROPAGATION_SECONDS)
        if reencrypt:
            job = reencryption_request(initiative, purpose, key, actor=actor)
            jobs.append(job.pk)
            delay = max(0.0, (job.not_before - timezone.now()).total_seconds())
            reencrypt_task.apply_async(args=[job.pk], countdown=delay)
    return RotationStarted(kek_id=kek.pk, announced=announced, jobs=jobs)
