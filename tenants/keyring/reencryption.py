"""The re-encryption sweep (level 3 of rotation): moves every sealed record (or index digest) on an
older version to the primary one, in resumable batches with a checkpoint and a lease on its job row
(workers.lease). It starts only when no process can still be writing an older version
(KEY_CACHE_SECONDS + KEY_WRITE_MARGIN_SECONDS after the switch), runs alone per initiative, and at the
end destroys the versions no record uses, then rotates the KEK so that the destroyed versions cannot be
unwrapped from a backup either.

The rules that keep data readable: a version is destroyed only inside a transaction that has just
counted no record on it; a sweep moves records only upwards, to a version that is still primary.
"""

from __future__ import annotations

import io
import logging
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tenants.audit import SYSTEM_ACTOR, audit_record
from tenants.db import connection
from tenants.keyring.index import digest_with
from tenants.keyring.keys import (
    UnwrappedKey,
    data_key,
    process_key_cache,
)
from tenants.keyring.registry import SealedTable, sealed_tables_for
from tenants.keyring.rotation import UNFINISHED_JOB_STATES, kek_rotate, sweep_may_start_at
from tenants.keyring.sealing import open_with, seal_with
from tenants.models import (
    DataKey,
    DataKeyState,
    KeyPurpose,
    ReencryptionJob,
    ReencryptionJobState,
)
from workers.lease import LeaseLostError, lease_claim, lease_release, lease_renew

logger = logging.getLogger(__name__)

_SMALLEST_UUID = uuid.UUID(int=0)


@dataclass
class SweepOutcome:
    job_id: int
    state: str
    records_done: int
    records_moved: int
    versions_destroyed: list[int]
    retry_in_seconds: float | None = None


def _lease_seconds() -> float:
    """How long a sweep's claim lasts without renewal (renewed after every batch)."""
    return settings.REENCRYPTION_LEASE_SECONDS


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
    unfinished = ReencryptionJob.objects.filter(pk=job.pk, state__in=UNFINISHED_JOB_STATES)
    if not lease_claim(unfinished, owner=owner, seconds=_lease_seconds(), state=ReencryptionJobState.RUNNING):
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
                try:
                    lease_renew(
                        ReencryptionJob.objects.filter(pk=job.pk),
                        owner=owner,
                        seconds=_lease_seconds(),
                        checkpoint_table=table.table,
                        checkpoint=checkpoint,
                        records_done=job.records_done,
                        records_moved=job.records_moved,
                    )
                except LeaseLostError:
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
            lease_release(
                ReencryptionJob.objects.filter(pk=job.pk), owner=owner, checkpoint_table="", checkpoint=None
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
