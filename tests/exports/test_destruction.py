"""REQ-18 and REQ-19 end to end: statements, e-mail addresses, export files and keys destroyed on their
deadlines, by runs that travel in time. The initiatives are committed (exports read from a connection of
their own, and pg_dump sees committed rows only) and removed after each test."""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone

from collection.models import ContactEmail, Statement
from collection.services import statement_record
from eci_platform.embedded import REPOSITORY_ROOT
from exports.contact_emails import contact_emails_download
from exports.models import ExportJob, ExportJobState
from exports.services import export_request, export_run
from exports.storage import export_storage
from exports.storage.s3 import S3ExportStorage
from regulation.annex_iii import FORM_REVISION
from regulation.retention import emails_destruction_deadline, statements_destruction_deadline
from tenants.audit import audit_record
from tenants.db import connection
from tenants.destruction import destroy_due
from tenants.keyring.keys import UnwrappedKey, data_key, process_key_cache, wrap_context
from tenants.keyring.providers import AwsKmsKeyProvider, KeyProviderError, key_provider, key_provider_reset
from tenants.keyring.sealing import SealedRecordError, open_sealed, open_with, sealed_version
from tenants.models import (
    AuditEvent,
    DataKey,
    DataKeyState,
    DestructionRecord,
    DestructionScope,
    Initiative,
    InitiativeState,
    KeyEncryptionKey,
    KeyPurpose,
    LegalHold,
)
from tenants.services import initiative_transition
from tests.conftest import client_for
from tests.exports.conftest import Factory, personal_data_of
from tests.processes import platform_environment
from tests.tenants.certificates import certify_valid

pytestmark = pytest.mark.usefixtures("committed_db", "_shared_initiatives_held")


@pytest.fixture
def _shared_initiatives_held(committed_db: None) -> Iterator[None]:
    """The session's committed initiatives (alpha, beta) would fall due too when a test travels two
    years ahead; a legal hold, the real mechanism, keeps them for the tests that follow."""
    holds = [
        LegalHold.objects.create(
            initiative=initiative,
            reason="Kept for the rest of the test run",
            reference="TEST-RUN",
            set_by="test",
            set_at=timezone.now(),
        )
        for initiative in Initiative.objects.filter(slug__in=["alpha", "beta"])
    ]
    yield
    LegalHold.objects.filter(pk__in=[hold.pk for hold in holds]).delete()


def _of(initiative: Initiative, items: list[dict[str, object]]) -> list[object]:
    """The scopes a report lists for one initiative."""
    return [item["scope"] for item in items if item["initiative"] == initiative.slug]


COUNTRIES = {"FR": 3, "DE": 2}
EMAILS = 2  # signatories from Austria who gave an address


def _noon(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(12), tzinfo=datetime.UTC)


def _collected(exporting_factory: Factory, *, emails: int = EMAILS) -> Initiative:
    """An initiative that collected statements (and addresses), closed, and exported France's."""
    initiative = exporting_factory(COUNTRIES, state=InitiativeState.COLLECTING).initiative
    with initiative:
        for number in range(emails):
            statement_record(
                country="AT",
                personal_data=personal_data_of("AT", number),
                form_revision=FORM_REVISION,
                contact_email=f"supporter{number}@example.org",
            )
    connection.set_schema_to_public()
    initiative.refresh_from_db()
    assert initiative.state == InitiativeState.COLLECTING  # its collection starts today
    initiative_transition(initiative, InitiativeState.CLOSED, actor="test")
    with initiative:
        (job,) = export_request(country="FR", actor="organiser@example.org")
        export_run(job.pk)
        assert ExportJob.objects.get(pk=job.pk).state == ExportJobState.DONE
    connection.set_schema_to_public()
    initiative.refresh_from_db()
    return initiative


def _rows(initiative: Initiative) -> tuple[int, int]:
    with initiative:
        counts = Statement.objects.count(), ContactEmail.objects.count()
    connection.set_schema_to_public()
    return counts


def _export_objects(initiative: Initiative) -> list[Path]:
    folder = Path(export_storage().location.removeprefix("file://")) / "exports" / initiative.schema_name
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


def _live_keys(initiative: Initiative) -> list[DataKey]:
    return list(DataKey.objects.filter(initiative=initiative).exclude(state=DataKeyState.DESTROYED))


def _emails_open(initiative: Initiative) -> list[str]:
    process_key_cache.clear()
    with initiative:
        rows = list(ContactEmail.objects.all())
        opened = [open_sealed(initiative.pk, row.pk, "EU", bytes(row.sealed_email)).decode() for row in rows]
    connection.set_schema_to_public()
    return sorted(opened)


def _submit(initiative: Initiative) -> None:
    certify_valid(initiative)  # REQ-01 before submission
    initiative_transition(initiative, InitiativeState.SUBMITTED, actor="test")
    initiative.refresh_from_db()


def test_a_submitted_initiative_loses_its_statements_a_month_later_and_its_addresses_a_year_later(
    exporting_factory: Factory,
) -> None:
    initiative = _collected(exporting_factory)
    _submit(initiative)
    today = timezone.localdate()
    deadline = statements_destruction_deadline(
        collection_start=initiative.collection_start, submitted_on=today
    )
    assert 28 <= (deadline - today).days <= 31
    assert _export_objects(initiative)

    with time_machine.travel(_noon(deadline - datetime.timedelta(days=1))):
        report = destroy_due()
    assert not report.destroyed and _rows(initiative) == (7, EMAILS)

    with time_machine.travel(_noon(deadline)):
        report = destroy_due()
    assert [(item["initiative"], item["scope"]) for item in report.destroyed] == [
        (initiative.slug, DestructionScope.STATEMENTS)
    ]
    initiative.refresh_from_db()
    assert initiative.state == InitiativeState.DESTROYED
    assert _rows(initiative) == (0, EMAILS)
    assert _export_objects(initiative) == []
    record = DestructionRecord.objects.get(initiative=initiative, scope=DestructionScope.STATEMENTS)
    assert record.is_finished and record.deadline == deadline
    assert record.rows_deleted == {"statements": 7}  # FR 3, DE 2, AT 2
    assert record.counts_kept == {"AT": EMAILS, "FR": 3, "DE": 2}
    assert record.files_deleted == 2  # the encrypted file and its manifest
    with initiative:
        assert all(job.files_destroyed_at for job in ExportJob.objects.all())
    connection.set_schema_to_public()
    # Only the addresses' own new key is left, under a KEK of its own; they still open.
    (kept,) = _live_keys(initiative)
    assert kept.purpose == KeyPurpose.PERSONAL_DATA and kept.version == 2
    assert KeyEncryptionKey.objects.filter(initiative=initiative, destroyed_at__isnull=True).count() == 1
    assert _emails_open(initiative) == [f"supporter{n}@example.org" for n in range(EMAILS)]
    # The site still shows the register data with the counts kept; organisers still get the addresses.
    counts = client_for(initiative).get("/api/counts.json").json()
    assert counts["total"] == 7 and counts["countries"]["FR"]["count"] == 3
    with initiative:
        download = contact_emails_download(initiative, actor="organiser", today=deadline)
        lines = "".join(download.lines).split()
    assert lines[0] == "email" and sorted(lines[1:]) == [f"supporter{n}@example.org" for n in range(EMAILS)]
    connection.set_schema_to_public()

    emails_deadline = emails_destruction_deadline(
        collection_start=initiative.collection_start,
        submitted_on=today,
        closed_on=initiative.closed_on,
    )
    with time_machine.travel(_noon(emails_deadline)):
        report = destroy_due()
    assert [item["scope"] for item in report.destroyed] == [DestructionScope.EMAILS]
    assert _rows(initiative) == (0, 0)
    assert _live_keys(initiative) == []
    assert not KeyEncryptionKey.objects.filter(initiative=initiative, destroyed_at__isnull=True).exists()
    emails_record = DestructionRecord.objects.get(initiative=initiative, scope=DestructionScope.EMAILS)
    assert emails_record.rows_deleted == {"contact_emails": EMAILS}
    assert emails_record.keys_destroyed["data_keys_destroyed"] == ["personal:v2"]


def test_statements_go_21_months_after_the_start_of_collection_when_never_submitted(
    exporting_factory: Factory,
) -> None:
    initiative = _collected(exporting_factory)
    deadline = statements_destruction_deadline(collection_start=initiative.collection_start)
    assert deadline > initiative.collection_end
    emails_deadline = emails_destruction_deadline(
        collection_start=initiative.collection_start, closed_on=initiative.closed_on
    )
    # Closed early (today): the addresses' 12 months after the close (REQ-19) run out first.
    assert emails_deadline < deadline
    backup = _dump([f"{initiative.schema_name}.collection_contactemail"])["collection_contactemail"]
    index_keys = {key.version for key in _live_keys(initiative) if key.purpose == KeyPurpose.INDEX}
    with time_machine.travel(_noon(emails_deadline)):
        assert [item["scope"] for item in destroy_due().destroyed] == [DestructionScope.EMAILS]
    assert _rows(initiative) == (7, 0)
    # The statements moved to a key of their own under a new KEK; their duplicate index kept its key.
    assert {(key.purpose, key.version) for key in _live_keys(initiative)} == {
        (KeyPurpose.PERSONAL_DATA, 2),
        *((KeyPurpose.INDEX, version) for version in index_keys),
    }
    assert KeyEncryptionKey.objects.filter(initiative=initiative, destroyed_at__isnull=True).count() == 1
    process_key_cache.clear()
    with initiative:
        for statement in Statement.objects.all():
            assert statement.key_version == 2
            open_sealed(initiative.pk, statement.pk, statement.country, bytes(statement.sealed_personal_data))
    connection.set_schema_to_public()
    _cannot_open(initiative, backup, "sealed_email", None)

    with time_machine.travel(_noon(deadline - datetime.timedelta(days=1))):
        assert destroy_due().destroyed == []
    with time_machine.travel(_noon(deadline)):
        report = destroy_due()
    assert [item["scope"] for item in report.destroyed] == [DestructionScope.STATEMENTS]
    assert _rows(initiative) == (0, 0)
    assert _live_keys(initiative) == []


def test_a_withdrawn_initiative_loses_statements_and_addresses_a_month_after_withdrawal(
    exporting_factory: Factory,
) -> None:
    initiative = _collected(exporting_factory)
    initiative_transition(initiative, InitiativeState.WITHDRAWN, actor="test", reason="organisers withdrew")
    initiative.refresh_from_db()
    deadline = statements_destruction_deadline(
        collection_start=initiative.collection_start, withdrawn_on=initiative.withdrawn_on
    )
    with time_machine.travel(_noon(deadline)):
        report = destroy_due()
    assert sorted(str(item["scope"]) for item in report.destroyed) == ["emails", "statements"]
    assert _rows(initiative) == (0, 0)
    assert _live_keys(initiative) == []
    assert not KeyEncryptionKey.objects.filter(initiative=initiative, destroyed_at__isnull=True).exists()


def test_a_held_initiative_is_skipped_and_destroyed_after_the_hold_is_lifted(
    exporting_factory: Factory,
) -> None:
    initiative = _collected(exporting_factory, emails=0)
    _submit(initiative)
    hold = LegalHold.objects.create(
        initiative=initiative,
        reason="Proceedings before the national court",
        reference="C-123/26",
        set_by="operator",
        set_at=timezone.now(),
    )
    deadline = statements_destruction_deadline(
        collection_start=initiative.collection_start, submitted_on=initiative.submitted_on
    )
    with time_machine.travel(_noon(deadline + datetime.timedelta(days=10))):
        report = destroy_due()
    assert report.destroyed == []
    assert [item for item in report.held if item["initiative"] == initiative.slug] == [
        {
            "initiative": initiative.slug,
            "scope": "statements",
            "deadline": deadline.isoformat(),
            "hold_reference": "C-123/26",
        }
    ]
    assert _rows(initiative)[0] == 5
    assert _export_objects(initiative)

    LegalHold.objects.filter(pk=hold.pk).update(lifted_at=timezone.now(), lifted_by="operator")
    with time_machine.travel(_noon(deadline + datetime.timedelta(days=11))):
        report = destroy_due()
    assert [item["scope"] for item in report.destroyed] == ["statements"]
    assert _rows(initiative) == (0, 0) and _export_objects(initiative) == []


def test_a_second_run_finds_nothing_to_do(exporting_factory: Factory) -> None:
    initiative = _collected(exporting_factory, emails=0)
    initiative_transition(initiative, InitiativeState.WITHDRAWN, actor="test")
    later = _noon(timezone.localdate() + datetime.timedelta(days=40))
    with time_machine.travel(later):
        first = destroy_due()
        started = AuditEvent.objects.filter(action="destruction.started").count()
        second = destroy_due()
    assert len(first.destroyed) == 2
    assert _of(initiative, second.held) == []
    assert second.as_dict() | {"run": "", "as_of": "", "held": []} == {
        "run": "",
        "as_of": "",
        "dry_run": False,
        "destroyed": [],
        "would_destroy": [],
        "held": [],
        "waiting": [],
        "failed": [],
        "another_run_active": False,
    }
    assert AuditEvent.objects.filter(action="destruction.started").count() == started


def test_a_dry_run_says_what_is_due_and_changes_nothing(exporting_factory: Factory) -> None:
    initiative = _collected(exporting_factory)
    initiative_transition(initiative, InitiativeState.WITHDRAWN, actor="test")
    keys_before = len(_live_keys(initiative))
    with time_machine.travel(_noon(timezone.localdate() + datetime.timedelta(days=40))):
        report = destroy_due(dry_run=True)
    assert {item["scope"]: item["would_remove"] for item in report.would_destroy} == {
        "statements": {"statements": 7, "export_jobs_with_files": 1},
        "emails": {"contact_emails": EMAILS},
    }
    assert _rows(initiative) == (7, EMAILS) and len(_live_keys(initiative)) == keys_before
    assert not DestructionRecord.objects.filter(initiative=initiative).exists()
    initiative.refresh_from_db()
    assert initiative.state == InitiativeState.WITHDRAWN


def test_another_initiative_is_not_touched(exporting_factory: Factory) -> None:
    doomed = _collected(exporting_factory)
    kept = _collected(exporting_factory)
    initiative_transition(doomed, InitiativeState.WITHDRAWN, actor="test")
    kept_keys = {key.pk: key.wrapped for key in _live_keys(kept)}
    with time_machine.travel(_noon(timezone.localdate() + datetime.timedelta(days=40))):
        report = destroy_due()
    assert {item["initiative"] for item in report.destroyed} == {doomed.slug}
    assert _rows(kept) == (7, EMAILS) and _export_objects(kept)
    assert {key.pk: key.wrapped for key in _live_keys(kept)} == kept_keys
    assert _emails_open(kept) == [f"supporter{n}@example.org" for n in range(EMAILS)]


def test_a_running_export_is_stopped_and_its_files_go_once_its_lease_is_over(
    exporting_factory: Factory,
) -> None:
    initiative = _collected(exporting_factory, emails=0)
    with initiative:
        (job,) = export_request(country="DE", actor="organiser@example.org")
        # A worker holds it, as export_run would while writing; then the organisers withdraw.
        ExportJob.objects.filter(pk=job.pk).update(
            state=ExportJobState.RUNNING,
            lease_owner="worker-elsewhere",
            lease_until=timezone.now() + datetime.timedelta(seconds=settings.EXPORT_LEASE_SECONDS),
            started_at=timezone.now(),
        )
    connection.set_schema_to_public()
    initiative_transition(initiative, InitiativeState.WITHDRAWN, actor="test")
    day = timezone.localdate() + datetime.timedelta(days=40)
    with time_machine.travel(_noon(day)):
        first = destroy_due()
    # The statements wait, and the addresses due with them wait for them.
    assert first.destroyed == []
    assert [(item["scope"], item["step"]) for item in first.waiting] == [
        ("statements", "export_files"),
        ("emails", "state"),
    ]
    with initiative:
        stopped = ExportJob.objects.get(pk=job.pk)
        assert stopped.state == ExportJobState.FAILED and "destroyed" in stopped.error
    connection.set_schema_to_public()
    assert _export_objects(initiative)  # not yet: the worker might still publish its file
    after_lease = _noon(day) + datetime.timedelta(seconds=settings.EXPORT_LEASE_SECONDS + 1)
    with time_machine.travel(after_lease):
        second = destroy_due()
    assert [item["scope"] for item in second.destroyed] == ["statements", "emails"]
    assert _export_objects(initiative) == [] and _rows(initiative) == (0, 0)
    assert _live_keys(initiative) == []


# -- S3 with versioning, KMS, and a run that fails halfway ---------------------------------------------------


def _object_versions(storage: S3ExportStorage, initiative: Initiative) -> list[str]:
    prefix = f"{storage.prefix}exports/{initiative.schema_name}/"
    listing = storage.client.list_object_versions(Bucket=storage.bucket, Prefix=prefix)
    uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket, Prefix=prefix)
    return [entry["Key"] for entry in listing.get("Versions", []) + listing.get("DeleteMarkers", [])] + [
        upload["Key"] for upload in uploads.get("Uploads", [])
    ]


def test_on_s3_and_kms_every_version_goes_and_the_keys_are_scheduled_for_deletion(
    exporting_factory: Factory, s3: S3ExportStorage, kms: AwsKmsKeyProvider
) -> None:
    s3.client.put_bucket_versioning(Bucket=s3.bucket, VersioningConfiguration={"Status": "Enabled"})
    initiative = _collected(exporting_factory)
    with initiative:
        (job,) = export_request(country="DE", actor="organiser@example.org")
        export_run(job.pk)
        done = ExportJob.objects.get(pk=job.pk)
    connection.set_schema_to_public()
    # Older versions, a delete marker and an upload a killed writer left: all are copies too.
    s3.put_bytes(done.object_key, b"an older version of the file")
    s3.delete(done.manifest_key)
    s3.client.create_multipart_upload(Bucket=s3.bucket, Key=s3.object_name(done.object_key))
    assert len(_object_versions(s3, initiative)) >= 6
    keks = list(KeyEncryptionKey.objects.filter(initiative=initiative))
    assert keks and all(kek.provider == "aws-kms" for kek in keks)

    initiative_transition(initiative, InitiativeState.WITHDRAWN, actor="test")
    with time_machine.travel(_noon(timezone.localdate() + datetime.timedelta(days=40))):
        report = destroy_due()
    assert sorted(str(item["scope"]) for item in report.destroyed) == ["emails", "statements"]
    assert _object_versions(s3, initiative) == []
    record = DestructionRecord.objects.get(initiative=initiative, scope=DestructionScope.STATEMENTS)
    assert record.files_deleted >= 6
    for kek in KeyEncryptionKey.objects.filter(initiative=initiative):
        key_id = kek.reference.split(":", 1)[1]
        metadata = kms._client.describe_key(KeyId=key_id)["KeyMetadata"]
        assert metadata["KeyState"] == "PendingDeletion" and kek.destroyed_at is not None


def test_a_run_that_fails_halfway_is_finished_by_the_next(
    exporting_factory: Factory, kms: AwsKmsKeyProvider, moto_endpoint: str
) -> None:
    initiative = _collected(exporting_factory)
    _submit(initiative)
    deadline = statements_destruction_deadline(
        collection_start=initiative.collection_start, submitted_on=initiative.submitted_on
    )
    # The key service is unreachable during the first run: rows and files go, the keys cannot.
    with override_settings(AWS_KMS_ENDPOINT_URL="http://127.0.0.1:9"), time_machine.travel(_noon(deadline)):
        key_provider_reset()
        first = destroy_due()
    key_provider_reset()
    assert first.destroyed == [] and [item["scope"] for item in first.failed] == ["statements"]
    record = DestructionRecord.objects.get(initiative=initiative, scope=DestructionScope.STATEMENTS)
    assert not record.is_finished and "statements" in record.steps_done and "keys" not in record.steps_done
    assert _rows(initiative) == (0, EMAILS) and _export_objects(initiative) == []
    assert AuditEvent.objects.filter(initiative=initiative, action="destruction.failed").exists()

    with time_machine.travel(_noon(deadline + datetime.timedelta(days=1))):
        second = destroy_due()
    assert [item["scope"] for item in second.destroyed] == ["statements"]
    assert second.destroyed[0]["resuming"] is True
    record.refresh_from_db()
    assert record.is_finished and record.started_run == first.run and record.finished_run == second.run
    assert record.counts_kept == {"AT": EMAILS, "FR": 3, "DE": 2}  # from the first run, not lost
    assert _emails_open(initiative) == [f"supporter{n}@example.org" for n in range(EMAILS)]


# -- a backup from before the destruction ------------------------------------------------------------


def _pg_dump() -> str:
    """A pg_dump at least as new as the server (pg_dump refuses a newer server): the embedded server's
    own where the embedded extra is installed (PostgreSQL 16, which dumps 15 as well), else the PATH's."""
    try:
        from pgserver._commands import POSTGRES_BIN_PATH
    except ImportError:
        return "pg_dump"
    bundled = Path(POSTGRES_BIN_PATH) / "pg_dump"
    return str(bundled) if bundled.exists() else "pg_dump"


def _dump(tables: list[str]) -> dict[str, list[dict[str, str]]]:
    """The rows of `tables` as pg_dump writes them (COPY text format), column by name."""
    database = connection.settings_dict
    command = [_pg_dump(), "--data-only", "--no-owner", "-h", database["HOST"], "-U", database["USER"]]
    if database.get("PORT"):
        command += ["-p", str(database["PORT"])]
    for table in tables:
        command += ["-t", table]
    text = subprocess.run(
        [*command, database["NAME"]], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    dumped: dict[str, list[dict[str, str]]] = {}
    current: tuple[str, list[str]] | None = None
    for line in text.splitlines():
        if line.startswith("COPY "):
            name, columns = line[5:].split(" (", 1)
            current = (name.split(".")[-1], columns.split(")")[0].split(", "))
            dumped[current[0]] = []
        elif line == "\\.":
            current = None
        elif current is not None:
            dumped[current[0]].append(dict(zip(current[1], line.split("\t"), strict=True)))
    return dumped


def _bytea(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("\\\\x"))


def test_a_database_dump_from_before_the_destruction_cannot_be_decrypted(
    exporting_factory: Factory,
) -> None:
    initiative = _collected(exporting_factory)
    _submit(initiative)
    schema = initiative.schema_name
    backup = _dump(
        [
            "public.tenants_datakey",
            "public.tenants_keyencryptionkey",
            f"{schema}.collection_statement",
            f"{schema}.collection_contactemail",
        ]
    )
    statements = backup["collection_statement"]
    addresses = backup["collection_contactemail"]
    assert len(statements) == 7 and len(addresses) == EMAILS
    # The backup opens while the keys live: the test below can fail.
    first = statements[0]
    blob = _bytea(first["sealed_personal_data"])
    assert open_sealed(initiative.pk, uuid.UUID(first["id"]), first["country"], blob)

    deadline = statements_destruction_deadline(
        collection_start=initiative.collection_start, submitted_on=initiative.submitted_on
    )
    with time_machine.travel(_noon(deadline)):
        assert destroy_due().destroyed
    process_key_cache.clear()

    # Every wrapped data key in the backup is useless: its KEK is gone at the provider.
    references = {row["id"]: row["reference"] for row in backup["tenants_keyencryptionkey"]}
    wrapped_keys = [row for row in backup["tenants_datakey"] if row["initiative_id"] == str(initiative.pk)]
    assert wrapped_keys
    for row in wrapped_keys:
        context = wrap_context(initiative.pk, row["purpose"], int(row["version"]))
        with pytest.raises(KeyProviderError):
            key_provider().unwrap(references[row["kek_id"]], _bytea(row["wrapped"]), context=context)
    # And no key the platform still holds opens a sealed record of the backup, whatever its version.
    assert _live_keys(initiative)  # the addresses' own key, until their deadline
    _cannot_open(initiative, statements, "sealed_personal_data", "country")
    _cannot_open(initiative, addresses, "sealed_email", None)


def _cannot_open(
    initiative: Initiative, rows: list[dict[str, str]], blob_column: str, scope_column: str | None
) -> None:
    """No key the platform still holds opens these dumped records, whatever version they name."""
    process_key_cache.clear()
    still_held = [data_key(initiative.pk, key.purpose, key.version) for key in _live_keys(initiative)]
    assert rows
    for row in rows:
        sealed = _bytea(row[blob_column])
        scope = row[scope_column] if scope_column else "EU"
        for key in still_held:
            as_if = UnwrappedKey(key.initiative_id, key.purpose, sealed_version(sealed), key.material)
            with pytest.raises(SealedRecordError):
                open_with(as_if, uuid.UUID(row["id"]), scope, sealed)


# -- the command ---------------------------------------------------------------------------------------------


def test_the_command_destroys_what_is_due_and_reports_it_as_json(exporting_factory: Factory) -> None:
    initiative = _collected(exporting_factory, emails=0)
    initiative_transition(initiative, InitiativeState.WITHDRAWN, actor="test")
    as_of = (timezone.localdate() + datetime.timedelta(days=40)).isoformat()
    out = io.StringIO()
    with override_settings(DEBUG=True):  # as `make dev` runs; pytest turns DEBUG off
        call_command("destroy_due", "--dry-run", "--as-of", as_of, "--json", stdout=out)
    dry = json.loads(out.getvalue())
    assert dry["dry_run"] and [item["initiative"] for item in dry["would_destroy"]] == [initiative.slug] * 2
    assert _rows(initiative) == (5, 0)

    out = io.StringIO()
    with override_settings(DEBUG=True):
        call_command("destroy_due", "--as-of", as_of, "--json", stdout=out)
    result = json.loads(out.getvalue())
    assert [item["scope"] for item in result["destroyed"]] == ["statements", "emails"]
    assert result["destroyed"][0]["counts_kept"] == {"FR": 3, "DE": 2}
    assert _rows(initiative) == (0, 0)
    assert (
        AuditEvent.objects.filter(
            initiative=initiative, action="destruction.finished", actor="command-line"
        ).count()
        == 2
    )


def test_as_of_is_refused_in_production_and_a_bad_date_is_refused() -> None:
    audit_record(actor="test", action="marker")
    before = AuditEvent.objects.count()
    out = io.StringIO()
    with override_settings(DEBUG=False), pytest.raises(CommandError, match="refused in production"):
        call_command("destroy_due", "--as-of", "2030-01-01", "--json", stdout=out)
    assert json.loads(out.getvalue())["errors"] == {"as_of": ["Only with DEBUG on."]}
    with override_settings(DEBUG=True), pytest.raises(CommandError, match="not a date"):
        call_command("destroy_due", "--as-of", "tomorrow")
    assert AuditEvent.objects.count() == before


def test_the_daily_task_is_scheduled() -> None:
    from eci_platform.celery import app

    schedule = app.conf.beat_schedule
    assert any(entry["task"] == "maintenance.destroy_due" for entry in schedule.values())
    assert "maintenance.destroy_due" in app.tasks


def test_the_command_can_be_limited_to_one_initiative_and_refuses_an_unknown_one(
    exporting_factory: Factory,
) -> None:
    chosen = _collected(exporting_factory, emails=0)
    other = _collected(exporting_factory, emails=0)
    for initiative in (chosen, other):
        initiative_transition(initiative, InitiativeState.WITHDRAWN, actor="test")
    as_of = (timezone.localdate() + datetime.timedelta(days=40)).isoformat()
    out = io.StringIO()
    with override_settings(DEBUG=True), pytest.raises(CommandError, match="No initiative with the slug"):
        call_command("destroy_due", "--initiative", "no-such-one", "--as-of", as_of, "--json", stdout=out)
    assert json.loads(out.getvalue())["errors"] == {"initiative": ["Unknown."]}
    assert not DestructionRecord.objects.exists() and _rows(other) == (5, 0)

    out = io.StringIO()
    with override_settings(DEBUG=True):
        call_command("destroy_due", "--initiative", chosen.slug, "--as-of", as_of, "--json", stdout=out)
    assert {item["initiative"] for item in json.loads(out.getvalue())["destroyed"]} == {chosen.slug}
    assert _rows(chosen) == (0, 0) and _rows(other) == (5, 0)


@contextlib.contextmanager
def _silent_endpoint() -> Iterator[int]:
    """A TCP port that takes connections and never answers: a storage that hangs."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield int(server.getsockname()[1])


def test_a_run_killed_halfway_is_finished_by_the_next(exporting_factory: Factory, keystore: Path) -> None:
    initiative = _collected(exporting_factory)
    initiative_transition(initiative, InitiativeState.WITHDRAWN, actor="test")
    as_of = timezone.localdate() + datetime.timedelta(days=40)
    with _silent_endpoint() as port:
        # The run's export storage hangs, as a bucket that stops answering: it is killed there, with -9.
        environment = platform_environment(
            keystore,
            EXPORT_STORAGE_URL="s3://exports/platform",
            EXPORT_S3_ENDPOINT_URL=f"http://127.0.0.1:{port}",
            EXPORT_S3_REGION="eu-west-1",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
        )
        run = subprocess.Popen(
            [sys.executable, "manage.py", "destroy_due", "--as-of", as_of.isoformat()],
            cwd=REPOSITORY_ROOT,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            waited = time.monotonic() + 60
            while not DestructionRecord.objects.filter(
                initiative=initiative, steps_done__contains=["state"]
            ).exists():
                assert run.poll() is None and time.monotonic() < waited, "the run did not get going"
                time.sleep(0.2)
            time.sleep(0.5)  # now inside the export-files step, waiting for the storage
        finally:
            run.kill()
            run.wait(timeout=30)
    record = DestructionRecord.objects.get(initiative=initiative, scope=DestructionScope.STATEMENTS)
    assert not record.is_finished and record.steps_done == ["state"]
    initiative.refresh_from_db()
    assert initiative.state == InitiativeState.DESTROYED  # nothing exports or signs meanwhile
    assert _rows(initiative) == (7, EMAILS) and _export_objects(initiative)

    report = destroy_due(as_of=as_of)
    assert sorted(str(item["scope"]) for item in report.destroyed) == ["emails", "statements"]
    record.refresh_from_db()
    assert record.is_finished and record.finished_run == report.run != record.started_run
    assert record.steps_done == ["state", "export_files", "statements", "published_counts", "keys"]
    assert AuditEvent.objects.filter(initiative=initiative, action="destruction.resumed").exists()
    assert _rows(initiative) == (0, 0) and _export_objects(initiative) == [] and _live_keys(initiative) == []
