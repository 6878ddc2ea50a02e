"""The re-encryption sweep against committed data: with statements written concurrently, and with a
worker process killed (SIGKILL) in the middle of a sweep. These tests commit, so they onboard an
initiative of their own and remove it afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import close_old_connections, transaction
from django.test import override_settings
from pytest_django.plugin import DjangoDbBlocker

from collection.models import Statement
from collection.services import statement_record
from eci_platform.embedded import REPOSITORY_ROOT
from tenants.db import connection
from tenants.keyring.rotation import (
    data_key_announce,
    data_key_promote,
    reencryption_request,
    reencryption_run,
)
from tenants.keyring.sealing import open_sealed
from tenants.keyring.selectors import reencryption_jobs_to_resume
from tenants.models import (
    AuditEvent,
    DataKey,
    DataKeyState,
    Domain,
    Initiative,
    KeyEncryptionKey,
    KeyPurpose,
    ReencryptionJob,
)
from tenants.services import initiative_onboard
from tests.conftest import onboarding_request

FAST = {
    "KEY_CACHE_SECONDS": 0,
    "KEY_PROPAGATION_SECONDS": 0,
    "REENCRYPTION_BATCH_SIZE": 100,
    "REENCRYPTION_LEASE_SECONDS": 1,
}


def person(number: int) -> dict[str, str]:
    return {
        "first_names": "Ivan",
        "family_names": f"Petrov {number}",
        "document_type": "personal.number",
        "document_number": f"{number:010d}",
    }


@pytest.fixture
def committed(
    django_db_setup: None, django_db_blocker: DjangoDbBlocker, request: pytest.FixtureRequest
) -> Iterator[Initiative]:
    serial = 700000 + (abs(hash(request.node.name)) % 99999)
    with django_db_blocker.unblock(), override_settings(**FAST):
        initiative = initiative_onboard(
            onboarding_request(f"live-{serial}", serial), actor="t", provision="now"
        )
        try:
            yield initiative
        finally:
            connection.set_schema_to_public()
            with connection.cursor() as cursor:
                cursor.execute(f'DROP SCHEMA "{initiative.schema_name}" CASCADE')
            ReencryptionJob.objects.filter(initiative=initiative).delete()
            DataKey.objects.filter(initiative=initiative).delete()
            KeyEncryptionKey.objects.filter(initiative=initiative).delete()
            AuditEvent.objects.filter(initiative=initiative).delete()
            Domain.objects.filter(tenant=initiative).delete()
            Initiative.objects.filter(pk=initiative.pk).delete()


def _write(initiative: Initiative, numbers: range) -> None:
    with initiative:
        for number in numbers:
            statement_record(country="BG", personal_data=person(number), form_revision="t")


def _check_all_moved(initiative: Initiative, target_version: int, expected_count: int) -> None:
    with initiative:
        rows = list(Statement.objects.all())
    assert len(rows) == expected_count, "no record is lost"
    assert {row.key_version for row in rows} == {target_version}, "no record is left on the old version"
    for row in rows:
        open_sealed(initiative.pk, row.pk, row.country, bytes(row.sealed_personal_data))


def test_records_written_before_during_and_after_a_rotation_all_open_afterwards(
    committed: Initiative,
) -> None:
    _write(committed, range(150))
    written = {"count": 150}
    stop = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        number = 10_000
        try:
            while not stop.is_set():
                _write(committed, range(number, number + 1))
                written["count"] += 1
                number += 1
        except BaseException as error:  # reported to the test below
            failures.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.2)  # writes before the rotation
        target = data_key_announce(committed, KeyPurpose.PERSONAL_DATA, actor="t")
        time.sleep(0.2)  # writes while the new version is pending
        data_key_promote(target.pk, actor="t")
        job = reencryption_request(committed, KeyPurpose.PERSONAL_DATA, target, actor="t")
        for _attempt in range(20):  # the sweep, while writes go on
            outcome = reencryption_run(job.pk)
            if outcome.state == "finished":
                break
        assert outcome.state == "finished"
        time.sleep(0.2)  # writes after the sweep
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not failures, failures
    assert written["count"] > 150 + 10, "the writer really ran alongside"
    _check_all_moved(committed, target.version, written["count"])
    assert DataKey.objects.get(initiative=committed, purpose=KeyPurpose.PERSONAL_DATA, version=1).state == (
        DataKeyState.DESTROYED
    )


def _database_url() -> str:
    database = connection.settings_dict
    host = database["HOST"] or "127.0.0.1"
    location = quote(host, safe="") if host.startswith("/") else f"{host}:{database['PORT'] or 5432}"
    password = f":{quote(database['PASSWORD'])}" if database.get("PASSWORD") else ""
    return f"postgres://{quote(database['USER'])}{password}@{location}/{database['NAME']}"


def test_a_sweep_whose_worker_is_killed_resumes_from_its_checkpoint(
    committed: Initiative, keystore: Path
) -> None:
    _write(committed, range(600))
    target = data_key_announce(committed, KeyPurpose.PERSONAL_DATA, actor="t")
    data_key_promote(target.pk, actor="t")
    job = reencryption_request(committed, KeyPurpose.PERSONAL_DATA, target, actor="t")
    with committed:
        ids = sorted(Statement.objects.values_list("pk", flat=True))
    environment = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "LOCAL_KEYSTORE_DIR": str(keystore),
        "LOCAL_MASTER_KEY_FILE": settings.LOCAL_MASTER_KEY_FILE,
        **{name: str(value) for name, value in FAST.items()},
    }
    script = (
        "import sys, django; django.setup(); from tenants.keyring.rotation import reencryption_run; "
        "reencryption_run(int(sys.argv[1]))"
    )

    # Hold the rows after the first batch, so the worker finishes one batch and then waits on them.
    with transaction.atomic(), committed:
        list(Statement.objects.select_for_update().filter(pk__gt=ids[99]).values_list("pk", flat=True))
        worker = subprocess.Popen(
            [sys.executable, "-c", script, str(job.pk)], cwd=REPOSITORY_ROOT, env=environment
        )
        deadline = time.monotonic() + 60
        while ReencryptionJob.objects.get(pk=job.pk).records_done < 100:
            assert worker.poll() is None, "the worker ended before it was killed"
            assert time.monotonic() < deadline, "the worker did not finish its first batch"
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    close_old_connections()

    job.refresh_from_db()
    assert job.state == "running" and job.records_done == 100 and job.checkpoint == ids[99]
    with committed:
        assert Statement.objects.filter(key_version=target.version).count() == 100
    time.sleep(1.1)  # the killed worker's lease runs out; the reconciler would now send the job again
    assert job.pk in set(reencryption_jobs_to_resume().values_list("pk", flat=True))

    outcome = reencryption_run(job.pk, owner=uuid.uuid4().hex)

    assert outcome.state == "finished"
    assert (outcome.records_done, outcome.records_moved) == (600, 600), "resumed, not restarted"
    assert outcome.versions_destroyed == [1]
    _check_all_moved(committed, target.version, 600)
