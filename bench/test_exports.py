"""Export benchmark: one Member State with 1,000,000 statements, exported by a worker process (stream,
open, XML, sign, encrypt, store), with its records/s and its memory sampled all along; and beside it the
rate of a plain `COPY ... TO STDOUT` of the same rows, the limit of reading them at all.

Run with `make bench` (BENCH_EXPORT_RECORDS changes the size). Prints one JSON object per figure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from pytest_django.plugin import DjangoDbBlocker

from collection.models import Statement
from eci_crypto.certificates import certificate_fingerprint, certificate_load, self_signed_certificate_create
from eci_platform.embedded import REPOSITORY_ROOT
from exports.models import ExportJob
from exports.services import export_request
from regulation.annex_iii import FORM_REVISION
from tenants.authorities import authority_confirm, authority_register
from tenants.db import connection
from tenants.models import CompetentAuthority, Initiative, InitiativeState
from tenants.services import initiative_transition
from tests.loading import statements_bulk_load
from tests.processes import platform_environment

pytestmark = pytest.mark.bench

RECORDS = int(os.environ.get("BENCH_EXPORT_RECORDS", "1000000"))
COUNTRY = "DE"  # Annex III Part A: the longer records (address and date of birth)
PERSON = {
    "first_names": "Maria Theresia",
    "family_names": "Müller-Lüdenscheidt",
    "street": "Heidestraße",
    "street_number": "17",
    "postal_code": "51147",
    "city": "Köln",
    "country_of_residence": "DE",
    "date_of_birth": "1964-08-12",
}


def _report(name: str, figures: dict[str, object]) -> None:
    print(f"\n{name}: {json.dumps(figures)}")


def _bulk_load(initiative: Initiative, count: int) -> None:
    statements_bulk_load(
        initiative,
        count,
        country=COUNTRY,
        person=lambda number: {**PERSON, "family_names": f"{PERSON['family_names']} {number}"},
        form_revision=FORM_REVISION,
    )


@pytest.fixture
def export_setup(
    initiative: Initiative, django_db_blocker: DjangoDbBlocker, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """An authority for the country, a signing key and a storage folder (the register data came with
    onboarding)."""
    private_key, certificate = self_signed_certificate_create("Benchmark authority")
    signing_key, signing_certificate = self_signed_certificate_create("Benchmark platform")
    (tmp_path / "platform.key").write_bytes(signing_key)
    (tmp_path / "platform.crt").write_bytes(signing_certificate)
    with django_db_blocker.unblock():
        authority_register(country=COUNTRY, certificate_pem=certificate, actor="bench")
        authority_confirm(
            country=COUNTRY,
            fingerprint=certificate_fingerprint(certificate_load(certificate)),
            actor="bench-confirmation",
        )
        try:
            yield {
                "EXPORT_STORAGE_URL": str(tmp_path / "storage"),
                "EXPORT_SIGNING_KEY_FILE": str(tmp_path / "platform.key"),
                "EXPORT_SIGNING_CERTIFICATE_FILE": str(tmp_path / "platform.crt"),
                "EXPORT_PROGRESS_RECORDS": "50000",
            }
        finally:
            CompetentAuthority.objects.filter(country=COUNTRY).delete()
            del private_key


def _copy_rate(initiative: Initiative) -> float:
    """Rows per second of COPY ... TO STDOUT of the same rows (what the export reads), on one connection."""
    started = time.perf_counter()
    rows = 0
    query = (
        "COPY (SELECT id, submitted_at, form_revision, sealed_personal_data FROM collection_statement "
        "WHERE country = 'DE' ORDER BY submitted_at, id) TO STDOUT"
    )
    with initiative, connection.cursor() as cursor, cursor.cursor.copy(query) as copy:
        for block in copy:
            rows += bytes(block).count(b"\n")
    assert rows == RECORDS
    return rows / (time.perf_counter() - started)


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_export_of_a_million_statements_records_per_second_and_memory(
    initiative: Initiative,
    export_setup: dict[str, str],
    django_db_blocker: DjangoDbBlocker,
    keystore: Path,
) -> None:
    with django_db_blocker.unblock():
        started = time.perf_counter()
        _bulk_load(initiative, RECORDS)
        load_seconds = time.perf_counter() - started
        copy_rate = _copy_rate(initiative)
        # Exports run once collection has closed.
        initiative_transition(initiative, InitiativeState.CLOSED, actor="bench", reason="benchmark")
        with initiative:
            (job,) = export_request(country=COUNTRY, actor="bench")
    script = (
        "import sys, time, django; django.setup(); from tenants.models import Initiative; "
        "from exports.services import export_run; "
        "initiative = Initiative.objects.get(pk=int(sys.argv[1])); initiative.__enter__(); "
        "started, cpu = time.perf_counter(), time.process_time(); outcome = export_run(int(sys.argv[2])); "
        # VmHWM, not ru_maxrss: the latter keeps the high-water mark of the forked parent across exec.
        "peak = [line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')][0]; "
        "print(outcome.state, outcome.records_written, time.perf_counter() - started, peak, "
        "time.process_time() - cpu)"
    )
    environment = platform_environment(keystore, LOG_LEVEL="WARNING", **export_setup)
    worker = subprocess.Popen(
        [sys.executable, "-c", script, str(initiative.pk), str(job.pk)],
        cwd=REPOSITORY_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        text=True,
    )
    # The worker's resident memory, sampled through the run: it must stay flat, not grow with the rows.
    samples: list[int] = []
    while worker.poll() is None:
        try:
            samples.append(_rss_kib(worker.pid))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.25)
    output, _ = worker.communicate(timeout=30)
    state, written, seconds, peak_kib, cpu_seconds = output.split()
    assert state == "done" and int(written) == RECORDS
    with django_db_blocker.unblock(), initiative:
        job = ExportJob.objects.get(pk=job.pk)
        Statement.objects.all().delete()
    quarters = [samples[len(samples) * share // 4] for share in range(1, 4)] if len(samples) >= 4 else samples
    _report(
        "export of one country",
        {
            "country": COUNTRY,
            "records": RECORDS,
            "seconds": round(float(seconds), 1),
            "records_per_second": round(RECORDS / float(seconds)),
            # CPU time of the export alone in the worker process (Python is one core).
            "worker_cpu_seconds": round(float(cpu_seconds), 2),
            "records_per_cpu_second": round(RECORDS / float(cpu_seconds)),
            "worker_peak_rss_mb": round(int(peak_kib) / 1024, 1),
            "worker_rss_mb_at_25_50_75_percent": [round(kib / 1024, 1) for kib in quarters],
            "file_mb": round((job.size_bytes or 0) / 1e6, 1),
            "copy_to_stdout_rows_per_second": round(copy_rate),
            "bulk_load_seconds": round(load_seconds, 1),
        },
    )
    assert int(peak_kib) / 1024 < 200, "the worker's memory must stay well under 200 MB"
    assert settings.TIME_ZONE  # the submission day is computed in the platform's zone
