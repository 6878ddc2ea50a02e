"""Key rotation at three levels, and crypto-shredding. Every key event is audited with key ids and
versions, never key material.

1. `kek_rotate`: rewrap every data key under a new KEK and destroy the old KEK. No record is touched;
   it takes milliseconds whatever the number of records.
2. `data_key_announce` then `data_key_promote`: a new version is first `pending` (every process can
   already open it) and becomes `primary` only after KEY_PROPAGATION_SECONDS, longer than any process
   caches its view of the keys; the old primary becomes `decrypt-only`. No downtime.
3. `reencryption_run`: a sweep that moves every sealed record (or index digest) on an older version to
   the primary one, in resumable batches with a checkpoint and a lease on its job row. It starts only
   when no process can still be writing an older version (KEY_CACHE_SECONDS + KEY_WRITE_MARGIN_SECONDS
   after the switch), runs alone per initiative, and at the end destroys the versions no record uses,
   then rotates the KEK so that the destroyed versions cannot be unwrapped from a backup either.

The rules that keep data readable: a version is destroyed only inside a transaction that has just
counted no record on it; a sweep moves records only upwards, to a version that is still primary; one
rotation at a time per initiative (the initiative's row is the lock).
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
from tenants.keyring.providers import KeyProviderError, key_provider
from tenants.keyring.registry import SealedTable, sealed_tables_for
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
from tenants.services import SYSTEM_ACTOR, audit_record

logger = logging.getLogger(__name__)

_SMALLEST_UUID = uuid.UUID(int=0)
UNFINISHED_JOB_STATES = (ReencryptionJobState.QUEUED, ReencryptionJobState.RUNNING)


class RotationError(RuntimeError):
    pass


def _lease() -> datetime.timedelta:
    """How long a sweep's claim lasts without renewal (renewed after every batch)."""
    return datetime.timedelta(seconds=settings.REENCRYPTION_LEASE_SECONDS)


def _lock_initiative(initiative: Initiative) -> None:
    Initiative.objects.select_for_update().filter(pk=initiative.pk).first()


# -- level 1: a new key-encryption key -------------------------------------------------------------------


def kek_rotate(initiative: Initiative, *, actor: str) -> KeyEncryptionKey:
    """Rewrap every live data key of `initiative` under a new KEK, then destroy the old KEK."""
    provider = key_provider()
    new_reference = provider.create_kek(label=initiative.schema_name)
    try:
        with transaction.atomic():
            _lock_initiative(initiative)  # no data key is announced under the old KEK meanwhile
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
        _kek_destroy(kek, actor=actor)
    return new_kek


def _kek_destroy(kek: KeyEncryptionKey, *, actor: str) -> None:
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
        _lock_initiative(initiative)  # one rotation at a time
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
        ReencryptionJob.objects.filter(pk=job_id, state__in=UNFINISHED_JOB_STATES)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_owner=owner, lease_until=now + _lease(), state=ReencryptionJobState.RUNNING)
    )
    return claimed == 1


def _renew(job: ReencryptionJob, owner: str, **progress: object) -> bool:
    updated = ReencryptionJob.objects.filter(pk=job.pk, lease_owner=owner).update(
        lease_until=timezone.now() + _lease(), **progress
    )
    return updated == 1


def _waiting(job: ReencryptionJob, seconds: float) -> SweepOutcome:
    return SweepOutcome(
        job.pk, job.state, job.records_done, job.records_moved, [], retry_in_seconds=max(seconds, 0.5)
    )


def reencryption_run(
    job_id: int, *, owner: str | None = None, max_batches: int | None = None
) -> SweepOutcome:
    """Run (or resume) a sweep. Safe to call twice: only the holder of the lease works; a finished job
    does nothing. `max_batches` stops early, leaving the lease to expire (tests use it as a crash).
    An outcome with `retry_in_seconds` asks to be run again after that long."""
    owner = owner or uuid.uuid4().hex
    job = ReencryptionJob.objects.select_related("initiative").get(pk=job_id)
    if job.state not in UNFINISHED_JOB_STATES:
        return _outcome(job)
    if job.attempts >= settings.REENCRYPTION_MAX_ATTEMPTS:
        return _fail(job, f"Gave up after {job.attempts} attempts; see the worker's log.")
    target_row = DataKey.objects.get(
        initiative=job.initiative, purpose=job.purpose, version=job.target_version
    )
    if target_row.state == DataKeyState.PENDING:
        return _waiting(job, (sweep_may_start_at(target_row) - timezone.now()).total_seconds())
    if target_row.state != DataKeyState.PRIMARY:
        return _fail(job, "The target key version is no longer primary (a newer rotation took over).")
    wait = (sweep_may_start_at(target_row) - timezone.now()).total_seconds()
    if wait > 0:
        return _waiting(job, wait)
    earlier = ReencryptionJob.objects.filter(
        initiative=job.initiative, state__in=UNFINISHED_JOB_STATES, pk__lt=job.pk
    )
    if earlier.exists():
        return _waiting(job, 5.0)  # one sweep at a time per initiative, oldest first
    if not _claim(job.pk, owner):
        return _outcome(job)  # another worker holds the lease

    job.refresh_from_db()
    initiative = job.initiative
    progress: dict[str, object] = {"attempts": job.attempts + 1}
    if job.started_at is None:
        with initiative:
            total = sum(_count(table) for table in sealed_tables_for(job.purpose))
        progress.update(started_at=timezone.now(), records_total=total)
        audit_record(
            actor=SYSTEM_ACTOR,
            action="key.sweep_started",
            initiative=initiative,
            job_id=job.pk,
            purpose=job.purpose,
            target_version=job.target_version,
            records_total=total,
        )
    ReencryptionJob.objects.filter(pk=job.pk).update(**progress)

    target = data_key(initiative.pk, job.purpose, job.target_version)
    batches = 0
    tables = sealed_tables_for(job.purpose)
    table_names = [table.table for table in tables]
    first = table_names.index(job.checkpoint_table) if job.checkpoint_table in table_names else 0
    with initiative:
        for position, table in enumerate(tables[first:], start=first):
            checkpoint = (job.checkpoint if position == first else None) or _SMALLEST_UUID
            while True:
                if max_batches is not None and batches >= max_batches:
                    return _outcome(ReencryptionJob.objects.get(pk=job.pk))
                if not DataKey.objects.filter(pk=target_row.pk, state=DataKeyState.PRIMARY).exists():
                    return _fail(job, "The target key version stopped being primary during the sweep.")
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
                    checkpoint_table=table.table,
                    checkpoint=checkpoint,
                    records_done=job.records_done,
                    records_moved=job.records_moved,
                ):
                    logger.warning("re-encryption job %s: lease lost, stopping", job.pk)
                    return _outcome(ReencryptionJob.objects.get(pk=job.pk))
    return _finish(job, owner, target.version)


def _older_than_target(table: SealedTable, purpose: str, version: int) -> int:
    field = "version_field" if purpose == KeyPurpose.PERSONAL_DATA else "digest_version_field"
    column = table.column(field)
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{table.table}" WHERE "{column}" < %s', [version])  # noqa: S608
        return int(cursor.fetchone()[0])


def _finish(job: ReencryptionJob, owner: str, target_version: int) -> SweepOutcome:
    initiative = job.initiative
    with transaction.atomic():
        # Lock the versions and hold off writers, then count: a version is destroyed only if, at this
        # moment, no record uses it. (Writers wait for the length of one count, once per rotation.)
        older = list(
            DataKey.objects.select_for_update()
            .filter(initiative=initiative, purpose=job.purpose, version__lt=target_version)
            .exclude(state=DataKeyState.DESTROYED)
        )
        with initiative:
            for table in sealed_tables_for(job.purpose):
                with connection.cursor() as cursor:
                    cursor.execute(f'LOCK TABLE "{table.table}" IN SHARE MODE')
            remaining = sum(
                _older_than_target(table, job.purpose, target_version)
                for table in sealed_tables_for(job.purpose)
            )
        if remaining:
            # Written with an old version after the sweep passed them: another pass from the start.
            ReencryptionJob.objects.filter(pk=job.pk, lease_owner=owner).update(
                checkpoint_table="", checkpoint=None, lease_until=None
            )
            return _waiting(job, 1.0)
        now = timezone.now()
        for key in older:
            key.state, key.wrapped, key.destroyed_at = DataKeyState.DESTROYED, b"", now
            key.save(update_fields=["state", "wrapped", "destroyed_at"])
            audit_record(
                actor=SYSTEM_ACTOR,
                action="key.destroyed",
                initiative=initiative,
                purpose=key.purpose,
                version=key.version,
                reason="no record uses it after the sweep",
            )
        destroyed = [key.version for key in older]
        ReencryptionJob.objects.filter(pk=job.pk).update(
            state=ReencryptionJobState.FINISHED,
            finished_at=now,
            lease_until=None,
            checkpoint=None,
            versions_destroyed=destroyed,
        )
        audit_record(
            actor=SYSTEM_ACTOR,
            action="key.sweep_finished",
            initiative=initiative,
            job_id=job.pk,
            purpose=job.purpose,
            records_moved=job.records_moved,
            versions_destroyed=destroyed,
        )
    process_key_cache.forget_initiative(job.initiative_id)
    if destroyed:
        # A backup still holds the destroyed versions wrapped under the current KEK: replace that KEK.
        kek_rotate(initiative, actor=SYSTEM_ACTOR)
    return _outcome(ReencryptionJob.objects.get(pk=job.pk))


def _fail(job: ReencryptionJob, reason: str) -> SweepOutcome:
    ReencryptionJob.objects.filter(pk=job.pk).update(
        state=ReencryptionJobState.FAILED, error=reason[:200], finished_at=timezone.now(), lease_until=None
    )
    audit_record(
        actor=SYSTEM_ACTOR, action="key.sweep_failed", initiative=job.initiative, job_id=job.pk, reason=reason
    )
    return _outcome(ReencryptionJob.objects.get(pk=job.pk))


def _outcome(job: ReencryptionJob) -> SweepOutcome:
    return SweepOutcome(job.pk, job.state, job.records_done, job.records_moved, list(job.versions_destroyed))


def _count(table: SealedTable) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{table.table}"')  # noqa: S608  (names from our own models)
        return int(cursor.fetchone()[0])


def _sweep_batch(
    table: SealedTable, initiative_id: int, purpose: str, target: UnwrappedKey, after: uuid.UUID
) -> tuple[int, int, uuid.UUID | None]:
    """Move one batch of records after `after` (keyset pagination by id) in one transaction. Returns
    records looked at, records changed, and the last id (None when there were no more records). Only
    records on an older version move, and only upwards."""
    assert table.model._meta.pk is not None
    pk = table.model._meta.pk.column
    blob, version, country = (
        table.column("sealed_field"),
        table.column("version_field"),
        table.column("country_field"),
    )
    personal = purpose == KeyPurpose.PERSONAL_DATA
    # The version this sweep moves: the blob's for personal data, the digest's for the index.
    digest = "" if personal else table.column("digest_field")
    moved_version = version if personal else table.column("digest_version_field")
    keys: dict[int, UnwrappedKey] = {}

    def key_for(version_number: int) -> UnwrappedKey:
        if version_number not in keys:
            keys[version_number] = data_key(initiative_id, KeyPurpose.PERSONAL_DATA, version_number)
        return keys[version_number]

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f'SELECT "{pk}", "{country}", "{version}", "{blob}", "{moved_version}" FROM "{table.table}" '  # noqa: S608
            f'WHERE "{pk}" > %s ORDER BY "{pk}" LIMIT %s',
            [after, settings.REENCRYPTION_BATCH_SIZE],
        )
        rows = cursor.fetchall()
        if not rows:
            return 0, 0, None
        buffer = io.StringIO()
        changed = 0
        for record_id, record_country, record_version, sealed, old in rows:
            if old >= target.version:
                continue
            plaintext = open_with(key_for(record_version), record_id, record_country, bytes(sealed))
            if personal:
                new_value = seal_with(target, record_id, record_country, plaintext)
            else:
                assert table.identity is not None  # only indexed tables are swept for the index
                new_value = digest_with(target, table.identity(plaintext, record_country))
            buffer.write(f"{record_id}\t\\\\x{new_value.hex()}\t{old}\n")
            changed += 1
        if changed:
            value_column, version_column = (blob, version) if personal else (digest, moved_version)
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
    then on nothing of the initiative decrypts and no index digest can be recomputed, in any backup.

    Other processes drop their cached copies within KEY_CACHE_SECONDS; shredding comes after the
    initiative has stopped collecting, when no process writes for it. If the provider fails for a KEK,
    the failure is audited and raised; running the service again retries what is left."""
    with transaction.atomic():
        _lock_initiative(initiative)
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
            _kek_destroy(kek, actor=actor)
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
    from workers.tasks import promote_data_key
    from workers.tasks import reencrypt as reencrypt_task

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
        promote_data_key.apply_async(args=[key.pk], countdown=settings.KEY_PROPAGATION_SECONDS)
    for job in ReencryptionJob.objects.filter(pk__in=jobs):
        delay = max(0.0, (job.not_before - timezone.now()).total_seconds())
        reencrypt_task.apply_async(args=[job.pk], countdown=delay)
    return RotationStarted(kek_id=kek.pk, announced=announced, jobs=jobs)
