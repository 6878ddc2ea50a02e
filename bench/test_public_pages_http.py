"""The public home page and /api/counts.json against the liveness probe, under wrk, on one gunicorn in one
run: the two answers come from the public cache (collection/public_cache.py) and must reach at least
PUBLIC_TARGET (0.8) of the probe's rate, which does no work at all (the ceiling of the stack).

The three are measured in turns (probe, home page, counts; BENCH_PUBLIC_ROUNDS times), so that a drift of
the machine's speed meanwhile (other programs) weighs on all three alike; each rate is the median of its
turns, which a burst of another program during one turn does not move.

Run with `make bench`. Needs wrk (Debian: apt-get install wrk). BENCH_PUBLIC_SECONDS (default 5, per
turn), BENCH_PUBLIC_ROUNDS (5), BENCH_GUNICORN_WORKERS (3), BENCH_GUNICORN_WORKER_CLASS (sync),
BENCH_GUNICORN_THREADS (2) and BENCH_WRK_CONNECTIONS (32) change the run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings
from pytest_django.plugin import DjangoDbBlocker

from collection.models import Statement
from collection.services import counts_refresh
from tenants.models import Initiative
from tests.processes import gunicorn, production_environment

pytestmark = [pytest.mark.bench, pytest.mark.skipif(not shutil.which("wrk"), reason="wrk is not installed")]

SECONDS = int(os.environ.get("BENCH_PUBLIC_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_PUBLIC_ROUNDS", "5"))
WORKERS = int(os.environ.get("BENCH_GUNICORN_WORKERS", "3"))
CONNECTIONS = int(os.environ.get("BENCH_WRK_CONNECTIONS", "32"))
WORKER_CLASS = os.environ.get("BENCH_GUNICORN_WORKER_CLASS", "sync")
THREADS = int(os.environ.get("BENCH_GUNICORN_THREADS", "2"))
# The target: the cached answers at least this share of the liveness probe's rate.
PUBLIC_TARGET = 0.8
# Statements per Member State in the published counts (made-up rows: counting is about rows).
STATEMENTS = {"AT": 1_200, "BE": 310, "DE": 7_250, "FR": 5_520, "PL": 3_890, "MT": 4_330}


def _wrk(port: int, path: str, host: str) -> float:
    """Requests per second wrk measured for GETs of `path` on `host`; every answer must be a 200."""
    output = subprocess.run(
        [
            "wrk",
            "-t",
            "2",
            "-c",
            str(CONNECTIONS),
            "-d",
            f"{SECONDS}s",
            "-H",
            f"Host: {host}",
            "-H",
            "Accept-Language: fr-BE,fr;q=0.9",
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=SECONDS + 120,
        check=True,
    ).stdout
    assert "Non-2xx" not in output, output
    return float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]


def _get(port: int, path: str, host: str) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310  (our own server on loopback)
        return answer.status, answer.read().decode()


def test_cached_public_answers_keep_up_with_the_liveness_probe(
    initiative: Initiative, django_db_blocker: DjangoDbBlocker, keystore: Path
) -> None:
    host = f"{initiative.slug}.{settings.PLATFORM_DOMAIN}"
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    # Production settings (DEBUG off), minus HTTPS: wrk speaks plain HTTP on loopback.
    environment = production_environment(keystore, CACHE_KEY_PREFIX=prefix)
    # The counts the site publishes, written where its processes read them (the same Redis and prefix).
    site_cache = {
        "default": {**settings.CACHES["default"], "LOCATION": environment["REDIS_URL"], "KEY_PREFIX": prefix}
    }
    with django_db_blocker.unblock(), initiative, override_settings(CACHES=site_cache):
        Statement.objects.bulk_create(
            Statement(
                country=country,
                form_revision="bench",
                key_version=1,
                index_digest=os.urandom(32),
                index_key_version=1,
                sealed_personal_data=os.urandom(64),
            )
            for country, count in STATEMENTS.items()
            for _ in range(count)
        )
        published = counts_refresh()
    assert published["total"] == sum(STATEMENTS.values())

    options = ["--workers", str(WORKERS), "--worker-class", WORKER_CLASS, "--backlog", "2048"]
    if WORKER_CLASS == "gthread":
        options += ["--threads", str(THREADS), "--keep-alive", "30"]
    home, counts = "/", "/api/counts.json"
    with gunicorn(environment, *options) as port:
        # The answers are the real ones (and this fills the cache).
        status, page = _get(port, home, host)
        assert status == 200 and "og:image" in page
        status, body = _get(port, counts, host)
        assert status == 200 and json.loads(body)["total"] == sum(STATEMENTS.values())
        rates: dict[str, list[float]] = {"/livez": [], home: [], counts: []}
        for _round in range(ROUNDS):
            for path, measured in rates.items():
                measured.append(_wrk(port, path, host))
    probe, home_rate, counts_rate = (statistics.median(measured) for measured in rates.values())
    figures = {
        "seconds_each": SECONDS,
        "rounds": ROUNDS,
        "gunicorn_workers": WORKERS,
        "gunicorn_worker_class": WORKER_CLASS,
        "connections": CONNECTIONS,
        "liveness_probe_per_second": round(probe, 1),
        "home_page_per_second": round(home_rate, 1),
        "counts_json_per_second": round(counts_rate, 1),
        "home_per_probe": round(home_rate / probe, 3),
        "counts_per_probe": round(counts_rate / probe, 3),
        "turns": rates,
        "target": PUBLIC_TARGET,
    }
    print("\npublic pages over HTTP:", json.dumps(figures))
    assert home_rate >= PUBLIC_TARGET * probe, figures
    assert counts_rate >= PUBLIC_TARGET * probe, figures
