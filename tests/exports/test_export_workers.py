"""Export jobs on real processes: a worker killed in the middle, repeated and simultaneous deliveries,
the reconciler, the commands, the S3 back end. These tests commit (the export reads committed rows)."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import close_old_connections
from django.test import override_settings
from django.utils import timezone

from eci_crypto.certificates import (
    certificate_fingerprint,
    certificate_load,
    private_key_load,
    self_signed_certificate_create,
)
from eci_crypto.cms.reader import export_file_read
from eci_platform.celery import app
from eci_platform.embedded import REPOSITORY_ROOT
from exports.models import ExportJob, ExportJobState
from exports.selectors import export_jobs_to_resume
from exports.services import export_request, export_run, platform_signing_identity
from exports.storage import export_storage
from exports.storage.s3 import S3ExportStorage
from exports.tasks import reconcile_exports, run_export
from regulation.annex_iii import FORM_REVISION
from tenants.models import CompetentAuthority
from tests.exports.conftest import AuthorityKeys, ExportingInitiative, personal_data_of
from tests.loading import statements_bulk_load
from tests.processes import platform_environment

Factory = Callable[..., ExportingInitiative]
QUEUES = ["default", "exports", "keys", "maintenance"]
STATEMENTS_TO_KILL_IN = 100_000


def decrypted(job: ExportJob, keys: AuthorityKeys) -> bytes:
    xml = io.BytesIO()
    export_file_read(
        io.BytesIO(export_storage().read(job.object_key)),
        xml,
        recipient_key=private_key_load(keys.private_key_pem),
        expected_signer=platform_signing_identity().certificate,
    )
    return xml.getvalue()


def visible_files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.is_file() and not path.name.startswith("."))


def all_files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.is_file())


@pytest.fixture
def worker() -> Iterator[None]:
    # Messages other tests sent without a worker (their initiatives are gone) are not this test's.
    app.control.purge()
    with start_worker(
        app, pool="solo", concurrency=1, queues=QUEUES, perform_ping_check=False, shutdown_timeout=30
    ):
        yield


def wait_for(job_ids: list[int], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while ExportJob.objects.filter(pk__in=job_ids, state__in=["queued", "running"]).exists():
        assert time.monotonic() < deadline, "the worker did not finish the export"
        time.sleep(0.1)


def test_a_worker_killed_mid_export_is_replaced_after_its_lease_and_one_file_results(
    exporting_factory: Factory, authority_keys: AuthorityKeys, keystore: Path, export_folders: Path
) -> None:
    exporting = exporting_factory({"DE": 1})
    initiative = exporting.initiative
    # Enough statements that the export runs for about a second: time to kill it half way.
    person = personal_data_of("DE", 0)
    statements_bulk_load(
        initiative,
        STATEMENTS_TO_KILL_IN,
        country="DE",
        person=lambda number: {**person, "family_names": f"Killed Worker {number}"},
        form_revision=FORM_REVISION,
    )
    total = STATEMENTS_TO_KILL_IN + 1
    with initiative:
        (job,) = export_request(country="DE", actor="t")
        (undisturbed,) = export_request(country="DE", actor="t")
    settings_for_the_worker = {
        "EXPORT_LEASE_SECONDS": "1",
        "EXPORT_PROGRESS_RECORDS": "5000",
        "EXPORT_STORAGE_URL": settings.EXPORT_STORAGE_URL,
        "EXPORT_SIGNING_KEY_FILE": settings.EXPORT_SIGNING_KEY_FILE,
        "EXPORT_SIGNING_CERTIFICATE_FILE": settings.EXPORT_SIGNING_CERTIFICATE_FILE,
    }
    script = (
        "import sys, django; django.setup(); from tenants.models import Initiative; "
        "from exports.services import export_run; "
        "initiative = Initiative.objects.get(pk=int(sys.argv[1])); initiative.__enter__(); "
        "export_run(int(sys.argv[2]))"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", script, str(initiative.pk), str(job.pk)],
        cwd=REPOSITORY_ROOT,
        env=platform_environment(keystore, **settings_for_the_worker),
    )
    with initiative:
        # Killed once it has reported progress (5,000 statements written), long before the end.
        deadline = time.monotonic() + 60
        while ExportJob.objects.get(pk=job.pk).records_written < 5000:
            assert worker.poll() is None, "the worker ended before it was killed"
            assert time.monotonic() < deadline, "the worker did not get going"
            time.sleep(0.01)
        assert worker.poll() is None, "the worker finished before it could be killed"
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        job.refresh_from_db()
        assert job.state == ExportJobState.RUNNING and job.attempts == 1 and not job.object_key
        assert 5000 <= job.records_written < total
        folder = export_storage().path(f"exports/{initiative.schema_name}/DE/x").parent  # type: ignore[attr-defined]
        partials = [path for path in folder.iterdir() if path.name.endswith(".partial")]
        assert partials and partials[0].stat().st_size > 0, "it had written part of the file"

        with override_settings(EXPORT_LEASE_SECONDS=1):
            time.sleep(1.1)  # the killed worker's lease runs out
            assert job.pk in set(export_jobs_to_resume().values_list("pk", flat=True))
            resumed = export_run(job.pk)
            export_run(undisturbed.pk)
        job.refresh_from_db()
        undisturbed.refresh_from_db()

    assert resumed.ran and job.state == ExportJobState.DONE and job.attempts == 2
    assert job.records_written == total
    assert all_files(folder) == sorted(
        [
            f"{job.pk}.xml.p7m",
            f"{job.pk}.manifest.json",
            f"{undisturbed.pk}.xml.p7m",
            f"{undisturbed.pk}.manifest.json",
        ]
    ), "one file and one manifest per job, nothing half-written left"
    assert decrypted(job, authority_keys) == decrypted(undisturbed, authority_keys)


def test_two_deliveries_at_the_same_instant_give_one_run_and_one_file(
    exporting_factory: Factory, authority_keys: AuthorityKeys
) -> None:
    exporting = exporting_factory({"FR": 200})
    with exporting.initiative:
        (job,) = export_request(country="FR", actor="t")
    start = threading.Barrier(2)
    outcomes = []

    def deliver() -> None:
        try:
            with exporting.initiative:
                start.wait()
                outcomes.append(export_run(job.pk))
        finally:
            close_old_connections()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcome.ran for outcome in outcomes) == [False, True]
    with exporting.initiative:
        job.refresh_from_db()
    assert job.state == ExportJobState.DONE and job.attempts == 1
    assert decrypted(job, authority_keys).count(b"<signature>") == 200


def test_jobs_run_on_a_real_worker_and_a_repeated_message_does_nothing(
    exporting_factory: Factory, authority_keys: AuthorityKeys, worker: None
) -> None:
    exporting = exporting_factory({"AT": 5, "IE": 3})
    with exporting.initiative:
        jobs = export_request(country="all", actor="t")  # sent to the worker on commit
        wait_for([job.pk for job in jobs])
        finished = {job.pk: job.finished_at for job in ExportJob.objects.all()}
        for job in jobs:
            run_export.delay(job.pk)  # a second delivery
        time.sleep(1.0)
        wait_for([job.pk for job in jobs])
        again = {job.pk: (job.finished_at, job.attempts, job.state) for job in ExportJob.objects.all()}
    assert all(state == ExportJobState.DONE and attempts == 1 for _at, attempts, state in again.values())
    assert {pk: at for pk, (at, _attempts, _state) in again.items()} == finished


def test_the_reconciler_sends_again_a_job_whose_worker_died(
    exporting_factory: Factory, authority_keys: AuthorityKeys, worker: None
) -> None:
    exporting = exporting_factory({"SE": 1})
    with exporting.initiative:
        (job,) = export_request(country="SE", actor="t")
        wait_for([job.pk])
        # As a killed worker leaves it: running, lease expired, no file.
        ExportJob.objects.filter(pk=job.pk).update(
            state=ExportJobState.RUNNING, lease_owner="dead", lease_until=timezone.now(), object_key=""
        )
    resent = reconcile_exports()
    assert resent[exporting.initiative.slug] == [job.pk]
    with exporting.initiative:
        wait_for([job.pk])
        job.refresh_from_db()
    assert job.state == ExportJobState.DONE and job.attempts == 2 and job.object_key


def test_export_statements_waits_for_the_worker_and_reports_json(
    exporting_factory: Factory, authority_keys: AuthorityKeys, worker: None
) -> None:
    exporting = exporting_factory({"NL": 4})
    out = StringIO()
    call_command(
        "export_statements",
        "--initiative",
        exporting.initiative.slug,
        "--country",
        "NL",
        "--wait",
        "--json",
        "--timeout",
        "60",
        stdout=out,
    )
    result = json.loads(out.getvalue())
    (job,) = result["jobs"]
    assert (job["country"], job["state"], job["records_written"]) == ("NL", "done", 4)
    assert job["authority_fingerprint"] == certificate_fingerprint(
        certificate_load(authority_keys.certificate_pem)
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--initiative", "no-such-initiative", "--country", "DE"], "No initiative"),
        (["--country", "XX"], "not a Member State"),
        (["--country", "all"], "no statements"),
    ],
)
def test_export_statements_refuses_with_a_message(
    exporting_factory: Factory, arguments: list[str], message: str
) -> None:
    exporting = exporting_factory({})
    if "--initiative" not in arguments:
        arguments = ["--initiative", exporting.initiative.slug, *arguments]
    with pytest.raises(CommandError, match=message):
        call_command("export_statements", *arguments, stdout=StringIO())


def test_set_authority_registers_then_confirms_and_refuses_bad_input(
    authority_keys: AuthorityKeys, committed_db: None, tmp_path: Path
) -> None:
    saved = CompetentAuthority.objects.get(country="LU")
    _key, certificate = self_signed_certificate_create("Luxembourg test authority")
    (tmp_path / "lu.crt").write_bytes(certificate)
    fingerprint = certificate_fingerprint(certificate_load(certificate))
    accounts = get_user_model().objects
    registrar = accounts.create_user("lu-registrar", password="p" * 16, is_staff=True, is_superuser=True)
    confirmer = accounts.create_user("lu-confirmer", password="p" * 16, is_staff=True, is_superuser=True)
    try:
        out = StringIO()
        call_command(
            "set_authority",
            "--country",
            "lu",
            "--certificate",
            str(tmp_path / "lu.crt"),
            "--as",
            "lu-registrar",
            "--json",
            stdout=out,
        )
        registered = json.loads(out.getvalue())
        # Not shown before confirmation: the confirming operator types it in.
        assert registered["fingerprint_sha256"] is None and registered["usable"] is False
        assert fingerprint not in out.getvalue() and registered["registered_by"] == "lu-registrar"
        with pytest.raises(CommandError, match="does not match"):
            call_command(
                "set_authority",
                "--country",
                "LU",
                "--confirm",
                "00:11",
                "--as",
                "lu-confirmer",
                stdout=StringIO(),
            )
        with pytest.raises(CommandError, match="another operator"):
            call_command(
                "set_authority",
                "--country",
                "LU",
                "--confirm",
                fingerprint,
                "--as",
                "lu-registrar",
                stdout=StringIO(),
            )
        out = StringIO()
        call_command(
            "set_authority",
            "--country",
            "LU",
            "--confirm",
            fingerprint.replace(":", "").lower(),
            "--as",
            "lu-confirmer",
            "--json",
            stdout=out,
        )
        confirmed = json.loads(out.getvalue())
        assert confirmed["usable"] is True and confirmed["confirmed_by"] == "lu-confirmer"
        assert confirmed["fingerprint_sha256"] == fingerprint  # shown once confirmed

        (tmp_path / "garbage.crt").write_bytes(b"not a certificate")
        for arguments, message in [
            (["--country", "LU", "--certificate", str(tmp_path / "missing.crt")], "Cannot read"),
            (["--country", "LU", "--certificate", str(tmp_path / "garbage.crt")], "certificate"),
            (["--country", "XX", "--certificate", str(tmp_path / "lu.crt")], "not a Member State"),
            (["--country", "DE", "--confirm", "AB:CD", "--as", "lu-confirmer"], "does not match"),
            (["--certificate", str(tmp_path / "lu.crt")], "--country is required"),
        ]:
            with pytest.raises(CommandError, match=message):
                call_command("set_authority", *arguments, stdout=StringIO())
    finally:
        CompetentAuthority.objects.filter(country="LU").delete()
        saved.save()
        registrar.delete()
        confirmer.delete()


def test_an_rsa_key_under_3072_bits_is_refused(
    authority_keys: AuthorityKeys, committed_db: None, tmp_path: Path
) -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    weak_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak")])
    now = datetime.datetime.now(datetime.UTC)
    weak = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(weak_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=9))
        .sign(weak_key, hashes.SHA256())
    )
    (tmp_path / "weak.crt").write_bytes(weak.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(CommandError, match="3072"):
        call_command(
            "set_authority", "--country", "LU", "--certificate", str(tmp_path / "weak.crt"), stdout=StringIO()
        )
    assert CompetentAuthority.objects.get(country="LU").confirmed_at is not None  # unchanged


def test_an_export_goes_to_s3_when_configured(
    exporting_factory: Factory, authority_keys: AuthorityKeys, s3: S3ExportStorage
) -> None:
    exporting = exporting_factory({"PT": 1, "DE": 3})
    with exporting.initiative:
        (job,) = export_request(country="DE", actor="t")
        export_run(job.pk)
        job.refresh_from_db()
    assert job.state == ExportJobState.DONE, job.error
    assert export_storage() is s3 and s3.location.startswith("s3://")
    assert decrypted(job, authority_keys).count(b"<signature>") == 3
    listing = s3.client.list_objects_v2(Bucket=s3.bucket)
    assert sorted(item["Key"] for item in listing["Contents"]) == [
        f"platform/eu/exports/{exporting.initiative.schema_name}/DE/{job.pk}.manifest.json",
        f"platform/eu/exports/{exporting.initiative.schema_name}/DE/{job.pk}.xml.p7m",
    ]


def test_another_initiatives_job_is_not_run_here(exporting_factory: Factory) -> None:
    first = exporting_factory({"DE": 1})
    second = exporting_factory({"DE": 1})
    with first.initiative:
        (job,) = export_request(country="DE", actor="t")
    with second.initiative:
        ExportJob.objects.all().delete()
        outcome = export_run(job.pk)
        assert not outcome.ran and outcome.state == "missing"
    with first.initiative:
        assert ExportJob.objects.get(pk=job.pk).state == ExportJobState.QUEUED
