"""Writes of the exports app, in the current initiative's schema: requesting exports and running them.

A job runs under a lease: the worker that claims it writes the country's statements, read in one snapshot
through a server-side cursor, opened, written as the XML of export_format.md, signed with the platform's key
and encrypted to the authority's certificate, straight into the export storage. Nothing decrypted touches
a disk. A re-run (lease expired, second delivery) writes the same object key, so a job has one file.
"""

from __future__ import annotations

import datetime
import functools
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import psycopg
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from collection.member_states import member_states
from collection.models import Statement
from exports.certificates import (
    CertificateError,
    SigningIdentity,
    certificate_fingerprint,
    signing_identity_from_files,
)
from exports.cms import ExportFileWriter
from exports.models import UNFINISHED_EXPORT_STATES, ExportBatch, ExportJob, ExportJobState
from exports.storage import export_object_key, export_storage
from exports.xml_writer import (
    ANNEX_REVISIONS,
    SCHEMA_PATH,
    SCHEMA_VERSION,
    ExportDataError,
    SignatureRecord,
    export_xml_write,
    initiative_export_data,
    initiative_export_data_check,
)
from tenants.authorities import authorities_for_export, authority_certificate
from tenants.db import connection
from tenants.guard import PublicSchemaTenantTableError
from tenants.keyring.keys import UnwrappedKey, data_key
from tenants.keyring.sealing import SealedRecordError, open_with, sealed_version, sealed_version_bytes
from tenants.models import Initiative, KeyPurpose
from tenants.services import audit_record

logger = logging.getLogger(__name__)

MANIFEST_FORMAT = "eci-export-manifest"
MANIFEST_VERSION = 1
FILE_SUFFIX = ".xml.p7m"
MANIFEST_SUFFIX = ".manifest.json"


class ExportRefusedError(Exception):
    """An export that cannot be made now; the message says which country and why."""


class _LeaseLostError(Exception):
    """Another worker took the job over (this one was too slow to renew): stop, write nothing more."""


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
    (`country` "all": a batch of one job per country). Refused as a whole, with one message per
    country, when any of them has no usable authority certificate. The jobs are sent to the workers once
    the rows are committed."""
    initiative = _current_initiative()
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
    return jobs


def _jobs_send(job_ids: list[int]) -> None:
    from workers.tasks import run_export  # the tasks import these services

    for job_id in job_ids:
        run_export.delay(job_id)


# Running ------------------------------------------------------------------------------------------------


def _lease_until() -> datetime.datetime:
    return timezone.now() + datetime.timedelta(seconds=settings.EXPORT_LEASE_SECONDS)


def _claim(job_id: int, owner: str) -> bool:
    """Take the job if nobody holds it: a second delivery of the same message finds it taken (or ended)."""
    now = timezone.now()
    claimed = (
        ExportJob.objects.filter(pk=job_id, state__in=UNFINISHED_EXPORT_STATES)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(
            state=ExportJobState.RUNNING,
            lease_owner=owner,
            lease_until=_lease_until(),
            attempts=F("attempts") + 1,
            started_at=now,
            records_written=0,
            error="",
        )
    )
    return claimed == 1


def _renew(job_id: int, owner: str, **progress: object) -> None:
    if not ExportJob.objects.filter(pk=job_id, lease_owner=owner).update(
        lease_until=_lease_until(), **progress
    ):
        raise _LeaseLostError


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
    except _LeaseLostError:
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
        ExportJob.objects.filter(pk=job.pk, lease_owner=owner).update(lease_until=timezone.now())
        logger.error("export job %s failed on attempt %s: %s", job.pk, job.attempts, type(error).__name__)
        raise


def _export_write(initiative: Initiative, job: ExportJob, owner: str) -> ExportOutcome:
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

    with _Snapshot(job.country) as (expected, records):
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
        raise _LeaseLostError
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
        rows = ExportJob.objects.filter(pk=job.pk, state__in=UNFINISHED_EXPORT_STATES)
        if owner is not None:
            rows = rows.filter(lease_owner=owner)
        ended = rows.update(
            state=state, error=error[:300], finished_at=now, lease_until=None, lease_owner="", **values
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
    return True


# Reading the statements ---------------------------------------------------------------------------------


_VERSION_BYTES = sealed_version_bytes()
_END_OF_ROWS = object()


class _Snapshot:
    """The country's statements, opened, from one consistent snapshot on a connection of its own: the
    server-side cursor needs an open transaction, and the lease and progress updates on Django's
    connection must commit while it streams."""

    def __init__(self, country: str) -> None:
        self.country = country
        self.initiative_id = _current_initiative().pk
        self.schema = connection.schema_name
        self.stream: psycopg.Connection | None = None
        # The fetching thread and its stop signal, ended by __exit__ whatever stopped the export.
        self.stop = threading.Event()
        self.fetcher: threading.Thread | None = None

    def __enter__(self) -> tuple[int, Iterator[SignatureRecord]]:
        parameters = connection.get_connection_params()
        parameters.pop("cursor_factory", None)
        parameters.pop("context", None)
        self.stream = psycopg.connect(**parameters, autocommit=False)
        try:
            self.stream.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            self.stream.execute("SELECT set_config('search_path', %s, true)", [f'"{self.schema}"'])
            table = Statement._meta.db_table
            row = self.stream.execute(
                f"SELECT count(*) FROM {table} WHERE country = %s",  # noqa: S608  (our table, bound values)
                [self.country],
            ).fetchone()
        except BaseException:
            self.stream.close()
            raise
        expected = int(row[0]) if row else 0
        return expected, self._records()

    def _records(self) -> Iterator[SignatureRecord]:
        revisions = ANNEX_REVISIONS
        initiative_id = self.initiative_id
        country = self.country
        keys: dict[int, UnwrappedKey] = {}
        decode = orjson.loads
        for rows in self._batches():
            for record_bytes, record_id, submitted_on, form_revision, sealed in rows:
                # The version in the header picks the key; open_with checks the header in full.
                version = int.from_bytes(sealed[_VERSION_BYTES], "big")
                key = keys.get(version)
                if key is None:
                    key = keys[version] = data_key(
                        initiative_id, KeyPurpose.PERSONAL_DATA, sealed_version(sealed)
                    )
                revision = revisions.get(form_revision)
                if revision is None:
                    raise ExportDataError(f"statement {record_id}: unknown form revision {form_revision!r}")
                personal_data = decode(open_with(key, record_bytes, country, sealed))
                yield SignatureRecord(record_id, submitted_on, revision, personal_data)

    def _batches(self) -> Iterator[list[tuple[bytes, str, datetime.date, str, bytes]]]:
        """Batches of rows from a thread of their own: PostgreSQL sends the next batch while this one is
        written (the fetch waits on the network, without the GIL). At most two batches wait: memory stays
        bounded whatever the number of statements."""
        stream = self.stream
        assert stream is not None
        waiting: queue.Queue[object] = queue.Queue(maxsize=2)
        stop = self.stop
        table = Statement._meta.db_table
        query = (
            # The submission day is the platform's local day, computed by PostgreSQL.
            # The id twice: its 16 bytes for the sealing's associated data and its text for the XML, both
            # made by PostgreSQL (building and printing UUID objects cost the writer a tenth of its time).
            f"SELECT uuid_send(id), id::text, (submitted_at AT TIME ZONE %s)::date, form_revision, "  # noqa: S608
            f"sealed_personal_data FROM {table} WHERE country = %s ORDER BY submitted_at, id"
        )

        def put(item: object) -> None:
            while not stop.is_set():
                try:
                    waiting.put(item, timeout=0.5)
                    return
                except queue.Full:
                    continue

        def fetch() -> None:
            try:
                with stream.cursor(name=f"export_{uuid.uuid4().hex}", binary=True) as cursor:
                    cursor.execute(query, [settings.TIME_ZONE, self.country])
                    while not stop.is_set() and (rows := cursor.fetchmany(settings.EXPORT_FETCH_RECORDS)):
                        put(rows)
                put(_END_OF_ROWS)
            except BaseException as error:  # handed to the consumer, raised there
                put(error)

        fetcher = self.fetcher = threading.Thread(target=fetch, name="export-fetch", daemon=True)
        fetcher.start()
        try:
            while True:
                item = waiting.get()
                if item is _END_OF_ROWS:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]
        finally:
            stop.set()
            fetcher.join(timeout=30)

    def __exit__(self, *_: object) -> None:
        # The export may have stopped mid-stream (bad data, a lost lease, the storage): the fetching
        # thread stops before its connection goes, not when the generator is collected.
        self.stop.set()
        if self.fetcher is not None:
            self.fetcher.join(timeout=30)
        if self.stream is not None:
            self.stream.rollback()
            self.stream.close()
