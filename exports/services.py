"""Writes of the exports app, in the current initiative's schema: requesting exports and running them.

A job runs under a lease: the worker that claims it writes the country's statements, read in one snapshot
through a server-side cursor, opened, written as the XML of export_format.md, signed with the platform's key
and encrypted to the authority's certificate, straight into the export storage. Nothing decrypted touches
a disk. A re-run (lease expired, second delivery) writes the same object key, so a job has one file.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from collection.models import Statement
from eci_crypto.certificates import (
    CertificateError,
    SigningIdentity,
    certificate_fingerprint,
    signing_identity_from_files,
)
from eci_crypto.cms.writer import ExportFileWriter
from exports.format import (
    FILE_SUFFIX,
    MANIFEST_FORMAT,
    MANIFEST_SUFFIX,
    MANIFEST_VERSION,
    SCHEMA_PATH,
    SCHEMA_VERSION,
)
from exports.metrics import EXPORT_JOBS, EXPORT_RECORDS
from exports.models import UNFINISHED_EXPORT_STATES, ExportBatch, ExportJob, ExportJobState
from exports.selectors import export_unavailable_reason
from exports.snapshot import StatementSnapshot
from exports.storage import export_storage
from exports.storage.base import export_object_key
from exports.xml_signatures import ExportDataError, SignatureRecord
from exports.xml_writer import (
    export_xml_write,
    initiative_export_data,
    initiative_export_data_check,
)
from regulation.member_states import member_states
from tenants.audit import audit_record
from tenants.authorities import authorities_for_export, authority_certificate
from tenants.db import connection
from tenants.guard import PublicSchemaTenantTableError
from tenants.keyring.sealing import SealedRecordError
from tenants.models import Initiative
from workers.base import task_send
from workers.lease import LeaseLostError, lease_claim, lease_lapse, lease_release, lease_renew

logger = logging.getLogger(__name__)


class ExportRefusedError(Exception):
    """An export that cannot be made now; the message says which country and why."""


@dataclass(frozen=True)
class ExportOutcome:
    job_id: int
    state: str
    records_written: int
    ran: bool  # False when another worker holds the job or it had already ended


def _current_initiative() -> Initiative:
    initiative = connection.tenant
    if not isinstance(initiative, Initiative):
        raise PublicSchemaTenantTableError("Exports are requested and run with an initiative active.")
    return initiative


# Requesting ---------------------------------------------------------------------------------------------


def export_request(*, country: str, actor: str) -> list[ExportJob]:
    """Request the export of one Member State (`country` its code) or of every one with statements
    (`country` "all": a batch of one job per country). Refused unless the initiative is closed or
    submitted and its statements are not destroyed (the message names the state), and refused as a
    whole, with one message per country, when any of them has no usable authority certificate. The jobs
    are sent to the workers once the rows are committed."""
    initiative = _current_initiative()
    unavailable = export_unavailable_reason(initiative)
    if unavailable is not None:
        raise ExportRefusedError(unavailable)
    code = country.strip().upper()
    if code == "ALL":
        countries = sorted(Statement.objects.order_by().values_list("country", flat=True).distinct())
        if not countries:
            raise ExportRefusedError("There are no statements to export yet.")
    elif code in member_states():
        if not Statement.objects.filter(country=code).exists():
            raise ExportRefusedError(f"There are no statements of {code} to export.")
        countries = [code]
    else:
        raise ExportRefusedError(f"{country!r} is not a Member State's code (use EL for Greece) or 'all'.")
    _usable, problems = authorities_for_export(countries)
    if problems:
        raise ExportRefusedError(" ".join(problems))
    try:
        initiative_export_data_check(initiative_export_data(initiative))
    except ExportDataError as error:
        raise ExportRefusedError(f"The initiative's register data is incomplete: {error}.") from None
    with transaction.atomic():
        batch = (
            ExportBatch.objects.create(
                requested_by=actor, jobs_total=len(countries), remaining=len(countries)
            )
            if code == "ALL"
            else None
        )
        jobs = [ExportJob.objects.create(batch=batch, country=each, requested_by=actor) for each in countries]
        audit_record(
            actor=actor,
            action="export.requested",
            initiative=initiative,
            countries=countries,
            jobs=[job.pk for job in jobs],
            batch=batch.pk if batch else None,
        )
        # robust: a broker outage must not turn saved jobs into an error page; the reconciler re-sends
        # queued jobs nobody claimed.
        transaction.on_commit(lambda: _jobs_send([job.pk for job in jobs]), robust=True)
    EXPORT_JOBS.labels(state=ExportJobState.QUEUED).inc(len(jobs))
    return jobs


def _jobs_send(job_ids: list[int]) -> None:
    for job_id in job_ids:
        task_send("exports.run", job_id)


# Running ------------------------------------------------------------------------------------------------


def _claim(job_id: int, owner: str) -> bool:
    """Take the job if nobody holds it: a second delivery of the same message finds it taken (or ended)."""
    claimed = lease_claim(
        ExportJob.objects.filter(pk=job_id, state__in=UNFINISHED_EXPORT_STATES),
        owner=owner,
        seconds=settings.EXPORT_LEASE_SECONDS,
        state=ExportJobState.RUNNING,
        attempts=F("attempts") + 1,
        started_at=timezone.now(),
        records_written=0,
        error="",
    )
    if claimed:
        EXPORT_JOBS.labels(state=ExportJobState.RUNNING).inc()
    return claimed


def _renew(job_id: int, owner: str, **progress: object) -> None:
    lease_renew(
        ExportJob.objects.filter(pk=job_id), owner=owner, seconds=settings.EXPORT_LEASE_SECONDS, **progress
    )


@functools.lru_cache(maxsize=4)
def _signing_identity(key_file: str, certificate_file: str, _versions: tuple[int, ...]) -> SigningIdentity:
    return signing_identity_from_files(key_file, certificate_file)


def platform_signing_identity() -> SigningIdentity:
    """The platform's export-signing key and certificate (in development, the pair that the `dev` runner
    and the test setup generate once)."""
    try:
        key_file, certificate_file = (
            settings.EXPORT_SIGNING_KEY_FILE,
            settings.EXPORT_SIGNING_CERTIFICATE_FILE,
        )
        # Keyed by the files' change times too: a renewed key or certificate (a mounted secret updated
        # in place) is read again without restarting the workers.
        versions = (os.stat(key_file).st_mtime_ns, os.stat(certificate_file).st_mtime_ns)
        return _signing_identity(key_file, certificate_file, versions)
    except (OSError, CertificateError) as error:
        # A configuration fault: say which setting, never the key's content.
        reason = error.strerror if isinstance(error, OSError) else str(error)
        raise ExportRefusedError(
            "The platform's export-signing key or certificate (EXPORT_SIGNING_KEY_FILE, "
            f"EXPORT_SIGNING_CERTIFICATE_FILE) cannot be used: {reason}."
        ) from None


def export_run(job_id: int, *, owner: str | None = None) -> ExportOutcome:
    """Run a job if it is free to run. Safe to call any number of times: only the lease holder works,
    an ended job is left alone."""
    owner = owner or uuid.uuid4().hex
    initiative = _current_initiative()
    job = ExportJob.objects.filter(pk=job_id).first()
    if job is None:  # not this initiative's job (or removed): nothing to do here
        return ExportOutcome(job_id, "missing", 0, ran=False)
    if job.state not in UNFINISHED_EXPORT_STATES:
        return ExportOutcome(job.pk, job.state, job.records_written, ran=False)
    if job.attempts >= settings.EXPORT_MAX_ATTEMPTS and job.lease_until and job.lease_until < timezone.now():
        _finish(job, owner=None, state=ExportJobState.FAILED, error=f"Gave up after {job.attempts} attempts.")
        return ExportOutcome(job.pk, ExportJobState.FAILED, job.records_written, ran=False)
    if not _claim(job.pk, owner):
        return ExportOutcome(job.pk, job.state, job.records_written, ran=False)
    job.refresh_from_db()
    try:
        return _export_write(initiative, job, owner)
    except LeaseLostError:
        logger.warning("export job %s: lease lost to another worker, stopped", job.pk)
        return ExportOutcome(job.pk, ExportJobState.RUNNING, 0, ran=False)
    except (ExportRefusedError, ExportDataError, SealedRecordError) as error:
        # The data or the registry will not change by retrying: say so on the job.
        _finish(job, owner=owner, state=ExportJobState.FAILED, error=str(error))
        return ExportOutcome(job.pk, ExportJobState.FAILED, 0, ran=True)
    except Exception as error:
        # Possibly transient (database, storage): let the lease lapse at once so the reconciler re-sends
        # the job, up to EXPORT_MAX_ATTEMPTS. Logged by its class only: a message might quote data. (The
        # task's retry machinery reports the exception itself; the transient ones are about connections.)
        lease_lapse(ExportJob.objects.filter(pk=job.pk), owner=owner)
        logger.error("export job %s failed on attempt %s: %s", job.pk, job.attempts, type(error).__name__)
        raise


def _export_allowed_check(initiative: Initiative) -> None:
    """Refuse a job whose initiative has left closed/submitted (withdrawn, say) or whose statements are
    being destroyed since it was requested: it fails, with the reason on the job."""
    unavailable = export_unavailable_reason(initiative)
    if unavailable is not None:
        raise ExportRefusedError(f"Not exported: {unavailable}")


def _export_write(initiative: Initiative, job: ExportJob, owner: str) -> ExportOutcome:
    _export_allowed_check(initiative)
    usable, problems = authorities_for_export([job.country])
    if problems:
        raise ExportRefusedError(" ".join(problems))
    authority = usable[job.country]
    recipient = authority_certificate(authority)
    identity = platform_signing_identity()
    storage = export_storage()
    object_key = export_object_key(initiative.schema_name, job.country, job.pk, FILE_SUFFIX)
    manifest_key = export_object_key(initiative.schema_name, job.country, job.pk, MANIFEST_SUFFIX)
    initiative_data = initiative_export_data(initiative)

    with StatementSnapshot(initiative.pk, job.country) as (expected, records):
        _renew(job.pk, owner, records_expected=expected)
        progress = _Progress(job.pk, owner)
        with storage.open_writer(object_key) as output:
            with ExportFileWriter(output, identity, recipient) as encrypted:
                written = export_xml_write(
                    encrypted,
                    country=job.country,
                    initiative_data=initiative_data,
                    signatures=progress.counted(records),
                )
            summary = encrypted.close()
            # Only the lease holder may let the object appear (the writer renames or completes on exit).
            _renew(job.pk, owner, records_written=written)
    try:
        # Withdrawn or destroyed while the file was written: it must not stay behind.
        _export_allowed_check(initiative)
    except ExportRefusedError:
        storage.delete(object_key)
        storage.leftovers_discard(object_key)
        raise
    manifest = {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "xml_schema": SCHEMA_PATH.name,
        "xml_schema_version": SCHEMA_VERSION,
        "initiative": {"registration_number": initiative.registration_number, "slug": initiative.slug},
        "country": job.country,
        "job": job.pk,
        "records": written,
        "file": {
            "name": f"{job.country}{FILE_SUFFIX}",
            "bytes": summary.file_bytes,
            "sha256": summary.file_sha256,
        },
        "content": {"bytes": summary.content_bytes, "sha256": summary.content_sha256},
        "authority_certificate_sha256": summary.recipient_fingerprint,
        "platform_certificate_sha256": summary.signer_fingerprint,
        "signed_at": summary.signing_time.isoformat(),
        "created_at": timezone.now().isoformat(),
    }
    storage.put_bytes(manifest_key, json.dumps(manifest, indent=2).encode())
    # What earlier holders of this job left half-written (a killed worker) goes: one job, one file.
    storage.leftovers_discard(object_key)
    ended = _finish(
        job,
        owner=owner,
        state=ExportJobState.DONE,
        records_written=written,
        object_key=object_key,
        manifest_key=manifest_key,
        size_bytes=summary.file_bytes,
        sha256=summary.file_sha256,
        authority_fingerprint=summary.recipient_fingerprint,
        platform_fingerprint=certificate_fingerprint(identity.certificate),
    )
    if not ended:
        raise LeaseLostError
    return ExportOutcome(job.pk, ExportJobState.DONE, written, ran=True)


class _Progress:
    """Renews the lease and records progress every EXPORT_PROGRESS_RECORDS records, and at the latest
    when a third of the lease has passed (a slow storage must not let the lease lapse)."""

    # How often the clock is looked at, in records: often enough for any lease, cheap enough per record.
    CLOCK_RECORDS = 1000

    def __init__(self, job_id: int, owner: str) -> None:
        self.job_id = job_id
        self.owner = owner

    def counted(self, records: Iterator[SignatureRecord]) -> Iterator[SignatureRecord]:
        every = max(settings.EXPORT_PROGRESS_RECORDS, 1)
        renew_after = settings.EXPORT_LEASE_SECONDS / 3
        renewed_at = time.monotonic()
        for number, record in enumerate(records, start=1):
            yield record
            due = number % every == 0
            if not due and number % self.CLOCK_RECORDS == 0:
                due = time.monotonic() - renewed_at > renew_after
            if due:
                _renew(self.job_id, self.owner, records_written=number)
                renewed_at = time.monotonic()


def _finish(job: ExportJob, *, owner: str | None, state: str, error: str = "", **values: object) -> bool:
    """End a job (only its lease holder may, unless `owner` is None) and count it off its batch, once."""
    now = timezone.now()
    with transaction.atomic():
        ended = lease_release(
            ExportJob.objects.filter(pk=job.pk, state__in=UNFINISHED_EXPORT_STATES),
            owner=owner,
            state=state,
            error=error[:300],
            finished_at=now,
            **values,
        )
        if not ended:
            return False
        if job.batch_id is not None:
            ExportBatch.objects.filter(pk=job.batch_id, remaining__gt=0).update(remaining=F("remaining") - 1)
            ExportBatch.objects.filter(pk=job.batch_id, remaining=0, finished_at__isnull=True).update(
                finished_at=now
            )
        audit_record(
            actor="system",
            action=f"export.{state}",
            initiative=connection.tenant if isinstance(connection.tenant, Initiative) else None,
            job=job.pk,
            country=job.country,
            records=values.get("records_written", 0),
            error=error[:300],
        )
    EXPORT_JOBS.labels(state=state).inc()
    if state == ExportJobState.DONE:
        EXPORT_RECORDS.inc(int(values.get("records_written", 0)))  # type: ignore[call-overload]
    return True


def export_jobs_stop(*, error: str) -> list[ExportJob]:
    """End every unfinished job of the current initiative as failed, from outside: a worker that holds
    one loses its lease at its next renewal and publishes nothing. Returns the jobs that were running."""
    running: list[ExportJob] = []
    for job in ExportJob.objects.filter(state__in=UNFINISHED_EXPORT_STATES):
        if (
            _finish(job, owner=None, state=ExportJobState.FAILED, error=error)
            and job.state == ExportJobState.RUNNING
        ):
            running.append(job)
    return running
