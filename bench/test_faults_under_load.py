"""Faults under load, the longer run of tests/faults.py (a bounded one runs in `make test`): gunicorn
serving the platform on a PostgreSQL and a Redis of the test's own, clients signing a new person with
every request, and in turn a SIGKILL of one web worker, a restart of PostgreSQL, a restart of Redis.
Prints the table per fault: requests, receipts, receipts lost, 5xx by code, answers lost with a killed
worker, seconds away, seconds until the platform served again.

BENCH_FAULT_STEADY_SECONDS (5), BENCH_FAULT_DOWN_SECONDS (3), BENCH_FAULT_AFTER_SECONDS (8),
BENCH_FAULT_CLIENTS (4) and BENCH_GUNICORN_WORKERS (3) change the run.
"""

from __future__ import annotations

import os

import pytest

from tests.faults import faults_under_load_checked
from tests.private_services import private_services_missing

MISSING = private_services_missing()
pytestmark = [pytest.mark.bench, pytest.mark.skipif(bool(MISSING), reason=MISSING)]


def test_faults_under_load() -> None:
    faults_under_load_checked(
        workers=int(os.environ.get("BENCH_GUNICORN_WORKERS", "3")),
        steady=float(os.environ.get("BENCH_FAULT_STEADY_SECONDS", "5")),
        down=float(os.environ.get("BENCH_FAULT_DOWN_SECONDS", "3")),
        after=float(os.environ.get("BENCH_FAULT_AFTER_SECONDS", "8")),
        clients=int(os.environ.get("BENCH_FAULT_CLIENTS", "4")),
    )
