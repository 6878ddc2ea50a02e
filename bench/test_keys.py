"""Key benchmarks: sealing and opening per record, the index digest, KEK rewrap time against the number
of records, and the re-encryption sweep over 1,000,000 records with statements being signed meanwhile.

Run with `make bench` (BENCH_SWEEP_RECORDS changes the sweep's size). Prints one JSON object per figure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import timeit
import uuid
from collections.abc import Mapping
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings
from pytest_django.plugin import DjangoDbBlocker

from collection.models import Statement
from collection.sealed import identity_of, personal_data_encode
from eci_platform.embedded import REPOSITORY_ROOT
from tenants.keyring.index import digest_with
from tenants.keyring.keys import data_key
from tenants.keyring.reencryption import reencryption_run
from tenants.keyring.rotation import data_key_announce, data_key_promote, kek_rotate, reencryption_request
from tenants.keyring.sealing import open_with, seal_with
from tenants.models import Initiative, KeyPurpose
from tests.loading import statements_bulk_load
from tests.processes import platform_environment

pytestmark = pytest.mark.bench

SWEEP_RECORDS = int(os.environ.get("BENCH_SWEEP_RECORDS", "1000000"))
PERSON = {
    "first_names": "Maria Theresia",
    "family_names": "von Habsburg-Lothringen",
    "document_type": "passport",
    "document_number": "P1234567",
}


def _report(name: str, figures: Mapping[str, object]) -> None:
    print(f"\n{name}: {json.dumps(figures)}")


def test_seal_open_and_digest_per_record(initiative: Initiative) -> None:
    key = data_key(initiative.pk, KeyPurpose.PERSONAL_DATA, 1)
    index_key = data_key(initiative.pk, KeyPurpose.INDEX, 1)
    record, plaintext = uuid.uuid4(), personal_data_encode(PERSON)
    blob = seal_with(key, record, "AT", plaintext)
    identity = identity_of(PERSON, "AT")
    rounds = 100_000
    figures = {
        "plaintext_bytes": len(plaintext),
        "sealed_bytes": len(blob),
        "seal_us": round(
            timeit.timeit(lambda: seal_with(key, record, "AT", plaintext), number=rounds) / rounds * 1e6, 2
        ),
        "open_us": round(
            timeit.timeit(lambda: open_with(key, record, "AT", blob), number=rounds) / rounds * 1e6, 2
        ),
        "index_digest_us": round(
            timeit.timeit(lambda: digest_with(index_key, identity), number=rounds) / rounds * 1e6, 2
        ),
    }
    _report("per record", figures)


def _bulk_load(initiative: Initiative, count: int) -> None:
    statements_bulk_load(
        initiative,
        count,
        country="AT",
        person=lambda number: {**PERSON, "document_number": f"P{number:09d}"},
        form_revision="bench",
    )


def _timed_ms(action: object) -> float:
    started = time.perf_counter()
    action()  # type: ignore[operator]
    return round((time.perf_counter() - started) * 1000, 1)


def test_rewrap_and_sweep_of_a_million_records(
    initiative: Initiative, django_db_blocker: DjangoDbBlocker
) -> None:
    with (
        django_db_blocker.unblock(),
        override_settings(KEY_PROPAGATION_SECONDS=0, KEY_CACHE_SECONDS=0, KEY_WRITE_MARGIN_SECONDS=0),
    ):
        rewrap_empty = _timed_ms(lambda: kek_rotate(initiative, actor="bench"))
        load_ms = _timed_ms(lambda: _bulk_load(initiative, SWEEP_RECORDS))
        rewrap_full = _timed_ms(lambda: kek_rotate(initiative, actor="bench"))
        _report(
            "kek rewrap",
            {
                "records": SWEEP_RECORDS,
                "with_0_records_ms": rewrap_empty,
                f"with_{SWEEP_RECORDS}_records_ms": rewrap_full,
                "bulk_load_ms": load_ms,
            },
        )

        target = data_key_announce(initiative, KeyPurpose.PERSONAL_DATA, actor="bench")
        data_key_promote(target.pk, actor="bench")
        job = reencryption_request(initiative, KeyPurpose.PERSONAL_DATA, target, actor="bench")
        environment = platform_environment(Path(settings.LOCAL_KEYSTORE_DIR))
        signer = subprocess.Popen(
            [sys.executable, "-m", "tests.signer", str(initiative.pk), "600", "AT", "passport", "8"],
            cwd=REPOSITORY_ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(2)  # the signer is up and signing
        started = time.perf_counter()
        outcome = reencryption_run(job.pk)
        for _pass in range(5):  # records signed with the old key during a pass get another
            if outcome.state != "running" and outcome.retry_in_seconds is None:
                break
            outcome = reencryption_run(job.pk)
        elapsed = time.perf_counter() - started
        signer.terminate()
        signer.wait(timeout=30)
        with initiative:
            signed_meanwhile = Statement.objects.filter(form_revision="signer").count()
        _report(
            "sweep",
            {
                "records": SWEEP_RECORDS,
                "records_moved": outcome.records_moved,
                "seconds": round(elapsed, 1),
                "records_per_second": round(outcome.records_moved / elapsed),
                "batch_size": settings.REENCRYPTION_BATCH_SIZE,
                "statements_signed_meanwhile": signed_meanwhile,
                "signed_per_second_meanwhile": round(signed_meanwhile / (elapsed + 2), 1),
            },
        )
        assert outcome.versions_destroyed == [1]
