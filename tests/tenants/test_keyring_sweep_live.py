"""The re-encryption sweep against committed data: with statements written concurrently, and with a
worker process killed (SIGKILL) in the middle of a sweep. These tests commit, so they onboard an
initiative of their own and remove it afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import close_old_connections, transaction
from django.test import override_settings
from pytest_django.plugin import DjangoDbBlocker

from collection.models import Statement
from collection.services import statement_record
from eci_platform.embedded import REPOSITORY_ROOT
from tenants.db import connection
from tenants.keyring.reencryption import reencryption_run
from tenants.keyring.rotation import data_key_announce, data_key_promote, reencryption_request
from tenants.keyring.sealing import open_sealed
from tenants.keyring.selectors import reencryption_jobs_to_resume
from tenants.models import (
    DataKey,
    DataKeyState,
    Initiative,
    KeyPurpose,
    ReencryptionJob,
)
from tenants.onboarding import initiative_onboard
from tests.conftest import onboarding_request
from tests.processes import committed_initiative_remove, platform_environment

FAST = {
    "KEY_CACHE_SECONDS": 0,
    "KEY_PROPAGATION_SECONDS": 0,
    "KEY_WRITE_MARGIN_SECONDS": 0,
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
            committed_initiative_remove(initiative)


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
    committed: Initiative, keystore: Path
) -> None:
    """A writer in another process, with its own key cache (1 s), signs throughout: before the
    rotation, while the new version is pending, across the switch, during the sweep and after it."""
    timing = {"KEY_CACHE_SECONDS": 1, "KEY_PROPAGATION_SECONDS": 1.5, "KEY_WRITE_MARGIN_SECONDS": 0.5}
    _write(committed, range(150))
    environment = platform_environment(keystore, **{name: str(value) for name, value in timing.items()})
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.signer", str(committed.pk), "7", "BG", "personal.number", "9"],
        cwd=REPOSITORY_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        text=True,
    )
    with override_settings(**timing):
        time.sleep(1.0)  # writes before the rotation
        target = data_key_announce(committed, KeyPurpose.PERSONAL_DATA, actor="t")
        job = reencryption_request(committed, KeyPurpose.PERSONAL_DATA, target, actor="t")
        while data_key_promote(target.pk, actor="t").state == DataKeyState.PENDING:  # type: ignore[union-attr]
            time.sleep(0.1)  # writes while the new version is pending
        outcome = reencryption_run(job.pk)
        waited_for_stale_writers = outcome.retry_in_seconds is not None
        while outcome.state != "finished":  # the sweep, while the writer goes on
            assert outcome.state != "failed", outcome
            time.sleep(outcome.retry_in_seconds or 0.1)
            outcome = reencryption_run(job.pk)
    written, _ = writer.communicate(timeout=60)  # and writes after the sweep, until the writer stops
    assert writer.returncode == 0
    assert waited_for_stale_writers, "the sweep waited until no process could still write the old version"
    assert int(written) > 50, "the writer really ran alongside"
    _check_all_moved(committed, target.version, 150 + int(written))
    assert DataKey.objects.get(initiative=committed, purpose=KeyPurpose.PERSONAL_DATA, version=1).state == (
        DataKeyState.DESTROYED
    )


def test_a_sweep_whose_worker_is_killed_resumes_from_its_checkpoint(
    committed: Initiative, keystore: Path
) -> None:
    _write(committed, range(600))
    target = data_key_announce(committed, KeyPurpose.PERSONAL_DATA, actor="t")
    data_key_promote(target.pk, actor="t")
    job = reencryption_request(committed, KeyPurpose.PERSONAL_DATA, target, actor="t")
    with committed:
        ids = sorted(Statement.objects.values_list("pk", flat=True))
    environment = platform_environment(keystore, **{name: str(value) for name, value in FAST.items()})
    script = (
        "import sys, django; django.setup(); from tenants.keyring.reencryption import reencryption_run; "
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


CANARY_NAME = "Zyxwvut Canarius-Qqqø"
CANARY_NUMBER = "CNRY998877"


def _canary_forms() -> list[bytes]:
    forms = [CANARY_NAME, CANARY_NAME.lower(), CANARY_NUMBER, CANARY_NUMBER.lower(), "Canarius", "canarius"]
    encoded = [form.encode() for form in forms]
    return encoded + [form.hex().encode() for form in encoded]


def _pg_dump() -> bytes:
    from pgserver._commands import POSTGRES_BIN_PATH

    database = connection.settings_dict
    command = [
        str(POSTGRES_BIN_PATH / "pg_dump"),
        "--no-owner",
        "-h",
        database["HOST"] or "127.0.0.1",
        "-U",
        database["USER"],
        "-d",
        database["NAME"],
    ]
    if database["PORT"]:
        command += ["-p", str(database["PORT"])]
    environment = {**os.environ, "PGPASSWORD": database.get("PASSWORD") or ""}
    return subprocess.run(command, check=True, capture_output=True, env=environment, timeout=120).stdout


def _redis_contents() -> bytes:
    """Every key and value in the Redis databases this run uses: the cache's and Celery's."""
    import redis
    from django.core.cache import cache

    from eci_platform.celery import app

    parts: list[Any] = []
    for client in (cache._cache.get_client(), redis.Redis.from_url(app.conf.broker_url)):  # type: ignore[attr-defined]
        parts.extend(_redis_database_contents(client))
    return b"\n".join(part if isinstance(part, bytes) else str(part).encode() for part in parts)


def _redis_database_contents(client: Any) -> list[Any]:
    parts: list[Any] = []
    for key in client.scan_iter(count=1000):
        parts.append(key)
        kind = client.type(key)
        if kind == b"string":
            parts.append(client.get(key) or b"")
        elif kind == b"list":
            parts.extend(client.lrange(key, 0, -1))
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                parts += [field, value]
        elif kind == b"set":
            parts.extend(client.smembers(key))
        elif kind == b"zset":
            parts.extend(client.zrange(key, 0, -1))
    return parts


def test_a_plaintext_canary_appears_nowhere_in_the_database_the_logs_or_redis(
    committed: Initiative, caplog: pytest.LogCaptureFixture
) -> None:
    from celery.contrib.testing.worker import start_worker

    from collection.tasks import refresh_counts
    from eci_platform.celery import app
    from tenants.tasks import reencrypt

    caplog.set_level("DEBUG")
    data = {
        "first_names": CANARY_NAME,
        "family_names": CANARY_NAME,
        "document_type": "passport",
        "document_number": CANARY_NUMBER,
    }
    with committed:
        statement_record(country="AT", personal_data=data, form_revision="t")
        _write(committed, range(5))
    # Through the other paths personal data passes: an index rotation whose sweep runs as a Celery job
    # on a real worker over Redis (its log lines land in caplog: the worker is a thread here), and a
    # task sent from the initiative's schema.
    target = data_key_announce(committed, KeyPurpose.INDEX, actor="t")
    data_key_promote(target.pk, actor="t")
    job = reencryption_request(committed, KeyPurpose.INDEX, target, actor="t")
    queue = f"test-{uuid.uuid4().hex}"
    with start_worker(
        app, pool="solo", concurrency=1, queues=[queue], perform_ping_check=False, shutdown_timeout=30
    ):
        assert reencrypt.apply_async(args=[job.pk], queue=queue).get(timeout=60)["state"] == "finished"
        with committed:
            counted = refresh_counts.apply_async(queue=queue)
        assert counted.get(timeout=60)["total"] == 6

    dump, redis_contents, logs = _pg_dump(), _redis_contents(), caplog.text.encode()
    assert b"collection_statement" in dump and len(dump) > 10_000, "the dump is a real one"
    assert b"celery-task-meta" in redis_contents and b"statement-counts" in redis_contents, "Redis was read"
    for form in _canary_forms():
        assert form not in dump, f"{form!r} is in the database dump"
        assert form not in redis_contents, f"{form!r} is in Redis"
        assert form not in logs, f"{form!r} is in the logs"
    # And the canary is really there, sealed: it opens to what was written.
    with committed:
        row = Statement.objects.get(country="AT")
    opened = open_sealed(committed.pk, row.pk, "AT", bytes(row.sealed_personal_data))
    assert CANARY_NAME.encode() in opened


def test_rotate_keys_command_waits_for_real_workers_and_reports_json(committed: Initiative) -> None:
    import json
    from io import StringIO

    from celery.contrib.testing.worker import start_worker
    from django.core.management import call_command

    from eci_platform.celery import app

    _write(committed, range(40))
    out = StringIO()
    timing = {"KEY_CACHE_SECONDS": 0.5, "KEY_PROPAGATION_SECONDS": 1, "KEY_WRITE_MARGIN_SECONDS": 0.5}
    started = time.monotonic()
    # The platform's own queues: the promotions and sweeps go through Redis with their real delays.
    with (
        override_settings(**timing),
        start_worker(
            app,
            pool="solo",
            concurrency=1,
            queues=["default", "exports", "keys", "maintenance"],
            perform_ping_check=False,
            shutdown_timeout=30,
        ),
    ):
        call_command(
            "rotate_keys",
            "--initiative",
            committed.slug,
            "--reencrypt",
            "--wait",
            "--json",
            "--timeout",
            "120",
            stdout=out,
        )
    elapsed = time.monotonic() - started
    result = json.loads(out.getvalue())
    assert result["initiative"] == committed.slug and result["new_versions"] == {"personal": 2, "index": 2}
    assert [
        (job["purpose"], job["state"], job["records_moved"], job["versions_destroyed"])
        for job in result["jobs"]
    ] == [("personal", "finished", 40, [1]), ("index", "finished", 40, [1])]
    states = {(key["purpose"], key["version"]): key["state"] for key in result["keys"]}
    assert states == {
        ("index", 1): "destroyed",
        ("index", 2): "primary",
        ("personal", 1): "destroyed",
        ("personal", 2): "primary",
    }
    assert elapsed >= 2.0, "promotion waited for the propagation time and the sweep for the cache time"
    wrapped = [
        bytes(value).hex()
        for value in DataKey.objects.filter(initiative=committed).values_list("wrapped", flat=True)
        if value
    ]
    assert wrapped and not any(value in out.getvalue() for value in wrapped)
    _check_all_moved(committed, 2, 40)


def test_the_sweep_runs_as_a_celery_job_on_a_real_worker(committed: Initiative) -> None:
    from celery.contrib.testing.worker import start_worker

    from eci_platform.celery import app
    from tenants.tasks import reencrypt

    _write(committed, range(250))
    target = data_key_announce(committed, KeyPurpose.PERSONAL_DATA, actor="t")
    data_key_promote(target.pk, actor="t")
    job = reencryption_request(committed, KeyPurpose.PERSONAL_DATA, target, actor="t")
    queue = f"test-{uuid.uuid4().hex}"
    with start_worker(
        app, pool="solo", concurrency=1, queues=[queue], perform_ping_check=False, shutdown_timeout=30
    ):
        outcome = reencrypt.apply_async(args=[job.pk], queue=queue).get(timeout=60)
    assert outcome["state"] == "finished" and outcome["records_moved"] == 250
    _check_all_moved(committed, target.version, 250)


@pytest.mark.django_db
def test_rotate_keys_refuses_an_unknown_initiative() -> None:
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No initiative"):
        call_command("rotate_keys", "--initiative", "nobody-here", stdout=StringIO())
