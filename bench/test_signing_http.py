"""Accepted statements per second against gunicorn, full flow: CSRF, a pre-solved proof of work,
validation, the duplicate index, encryption, the insert; with p50 and p99 latency from wrk, and in the
same run a plain PostgreSQL single-row insert rate from pgbench for scale, and the rate at which the same
gunicorn answers the same POSTs on its liveness probe (no work at all: the ceiling of the stack), and the
rate of bench/signing_floor.py, the least a Python process can do with the same I/O, without Django.

Run with `make bench`. Needs wrk and pgbench on the machine (Debian: apt-get install wrk; pgbench comes
with PostgreSQL). BENCH_SIGNING_COUNTRY (AT, a Part B form, the default; DE, Part A), BENCH_SIGNING_SECONDS
(default 30), BENCH_GUNICORN_WORKERS (default 3) and
BENCH_WRK_CONNECTIONS (default 32) change the run.
"""

from __future__ import annotations

import collections
import json
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.conf import settings
from pytest_django.plugin import DjangoDbBlocker

from bench.signing_floor import FLOOR_TABLE
from collection.models import Statement
from tenants.db import connection
from tenants.models import Initiative
from tests.processes import UNLIMITED_SIGNING, gunicorn, production_environment
from tests.signing_load import csrf_pair, person, solved_proof

pytestmark = [pytest.mark.bench, pytest.mark.skipif(not shutil.which("wrk"), reason="wrk is not installed")]

SECONDS = int(os.environ.get("BENCH_SIGNING_SECONDS", "30"))
WORKERS = int(os.environ.get("BENCH_GUNICORN_WORKERS", "3"))
CONNECTIONS = int(os.environ.get("BENCH_WRK_CONNECTIONS", "32"))
# sync closes the connection after each answer; gthread keeps it open (wrk reuses it) with THREADS each.
WORKER_CLASS = os.environ.get("BENCH_GUNICORN_WORKER_CLASS", "sync")
THREADS = int(os.environ.get("BENCH_GUNICORN_THREADS", "2"))
# AT: an Annex III Part B form (document number); DE: Part A (address and date of birth).
COUNTRY = os.environ.get("BENCH_SIGNING_COUNTRY", "AT")
assert COUNTRY in ("AT", "DE"), "BENCH_SIGNING_COUNTRY is AT or DE"
PROOF_COST = 1000

WRK_SCRIPT = """
-- Each wrk thread takes its own share of the bodies: every request is a new person with a new proof.
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
local bodies = {}
for line in io.lines(os.getenv("BODIES")) do bodies[#bodies + 1] = line end
local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Cookie"] = "csrftoken=" .. os.getenv("CSRF_COOKIE")
wrk.headers["Host"] = os.getenv("SITE_HOST")
request = function()
  counter = counter + 1
  local share = math.floor(#bodies / 2)
  return wrk.format(nil, os.getenv("SIGN_PATH"), nil, bodies[(id * share) + (counter % share) + 1])
end
"""


def cpu_seconds_by_program() -> dict[str, float]:
    """CPU seconds used so far by every process on the machine, summed per program (gunicorn counted
    under its own name, not python's); the difference of two readings is what a run cost."""
    used: dict[str, float] = collections.defaultdict(float)
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue  # ended meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        program = "gunicorn" if b"gunicorn" in command_line else name
        used[program] += (int(fields[11]) + int(fields[12])) / ticks_per_second
    return used


def _pgbench_insert_rate() -> float:
    database = connection.settings_dict
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write("INSERT INTO bench_rows (payload) VALUES (md5(random()::text));\n")
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS public.bench_rows (id bigserial PRIMARY KEY, payload text)"
        )
    command = [
        shutil.which("pgbench") or "pgbench",
        "-n",
        "-c",
        str(CONNECTIONS),
        "-j",
        "2",
        "-T",
        "10",
        "-f",
        script.name,
        "-h",
        database["HOST"] or "127.0.0.1",
        "-U",
        database["USER"],
        database["NAME"],
    ]
    if database["PORT"]:
        command[1:1] = ["-p", str(database["PORT"])]
    output = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE public.bench_rows")
    return float(re.search(r"tps = ([\d.]+)", output).group(1))  # type: ignore[union-attr]


def _wrk(port: int, seconds: int, path: str, bodies: str, script: str, csrf_cookie: str, host: str) -> str:
    """wrk's report of `seconds` of POSTs of the prepared bodies to `path`."""
    return subprocess.run(
        [
            "wrk",
            "-t",
            "2",
            "-c",
            str(CONNECTIONS),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            script,
            f"http://127.0.0.1:{port}",
        ],
        env={
            **os.environ,
            "BODIES": bodies,
            "CSRF_COOKIE": csrf_cookie,
            "SITE_HOST": host,
            "SIGN_PATH": path,
        },
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=True,
    ).stdout


def test_accepted_statements_per_second_against_gunicorn(
    initiative: Initiative, django_db_blocker: DjangoDbBlocker, keystore: Path
) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)

    host = f"{initiative.slug}.{settings.PLATFORM_DOMAIN}"
    environment = production_environment(
        keystore,
        ALTCHA_COST=str(PROOF_COST),
        LOG_LEVEL="INFO",  # the default: one log line per attempt, as in production
        **UNLIMITED_SIGNING,
    )
    options = ["--workers", str(WORKERS), "--worker-class", WORKER_CLASS, "--backlog", "2048"]
    if WORKER_CLASS == "gthread":
        options += ["--threads", str(THREADS), "--keep-alive", "30"]
    with gunicorn(environment, *options) as port:
        csrf_cookie, csrf_token = csrf_pair(port, host, COUNTRY)
        # More bodies than the run uses at 2,000/s: every body is a new person with a fresh proof.
        expected_requests = SECONDS * 2000
        started = time.perf_counter()
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as bodies:
            for number in range(expected_requests):
                bodies.write(
                    urlencode(
                        {
                            "csrfmiddlewaretoken": csrf_token,
                            **person(COUNTRY, number),
                            "declaration": "on",
                            "altcha": solved_proof(initiative.pk, PROOF_COST),
                        }
                    )
                    + "\n"
                )
        preparation = time.perf_counter() - started
        cpu_before = cpu_seconds_by_program()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wrk = _wrk(port, SECONDS, f"/sign/{COUNTRY}/", bodies.name, script.name, csrf_cookie, host)
        cpu_after = cpu_seconds_by_program()
        cpu_used = {program: cpu_after[program] - cpu_before.get(program, 0.0) for program in cpu_after}
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        # wrk has ended by now: its CPU is this process's children's.
        cpu_used["wrk"] = (children.ru_utime - children_before.ru_utime) + (
            children.ru_stime - children_before.ru_stime
        )
        # For scale: the same POSTs answered by the liveness probe, which does no work (gunicorn and
        # Django's handler only): the most requests per second this machine serves through the stack.
        probe = _wrk(port, 10, "/livez", bodies.name, script.name, csrf_cookie, host)
    # For scale too: the same POSTs to the least a Python process can do with the same I/O (Redis
    # script, sealing, the insert into a copy of the statement table), without Django.
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        statements = f"{initiative.schema_name}.{Statement._meta.db_table}"
        cursor.execute(f"CREATE TABLE {FLOOR_TABLE} (LIKE {statements} INCLUDING ALL)")
    floor_environment = {
        **environment,
        "FLOOR_DATABASE_URL": environment["DATABASE_URL"],
        "FLOOR_REDIS_URL": environment["REDIS_URL"],
    }
    with gunicorn(floor_environment, *options, application="bench.signing_floor:application") as floor_port:
        floor = _wrk(floor_port, 10, f"/sign/{COUNTRY}/", bodies.name, script.name, csrf_cookie, host)
    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {FLOOR_TABLE}")  # noqa: S608  (a constant)
            (floor_rows,) = cursor.fetchone()
            cursor.execute(f"DROP TABLE {FLOOR_TABLE}")
        with initiative:
            accepted = Statement.objects.count()
        pgbench_tps = _pgbench_insert_rate()

    def latency(label: str) -> str:
        found = re.search(rf"\s{label}%\s+([\d.]+\w+)", wrk)
        return found.group(1) if found else "?"

    requests = int(re.search(r"(\d+) requests in", wrk).group(1))  # type: ignore[union-attr]
    probe_rate = float(re.search(r"Requests/sec:\s+([\d.]+)", probe).group(1))  # type: ignore[union-attr]
    floor_rate = float(re.search(r"Requests/sec:\s+([\d.]+)", floor).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk)
    print(
        "\nsigning over HTTP:",
        json.dumps(
            {
                "seconds": SECONDS,
                "gunicorn_workers": WORKERS,
                "gunicorn_worker_class": WORKER_CLASS,
                "country": COUNTRY,
                "connections": CONNECTIONS,
                "requests": requests,
                "accepted_statements": accepted,
                "accepted_per_second": round(accepted / SECONDS, 1),
                "non_2xx_3xx": int(non_2xx.group(1)) if non_2xx else 0,
                "latency_p50": latency("50"),
                "latency_p99": latency("99"),
                "pgbench_single_row_inserts_per_second": round(pgbench_tps, 1),
                "liveness_probe_posts_per_second": probe_rate,
                # Less sensitive to how fast the machine happens to be than either rate alone.
                "accepted_per_probe_post": round(accepted / SECONDS / probe_rate, 3),
                "python_floor_statements_per_second": floor_rate,
                "python_floor_rows": floor_rows,
                "accepted_per_floor_statement": round(accepted / SECONDS / floor_rate, 3),
                "bodies_prepared": expected_requests,
                "preparation_seconds": round(preparation, 1),
                # Where the 2 cores went, per accepted statement (all processes of each program).
                "cpu_ms_per_statement": {
                    program: round(seconds * 1000 / max(accepted, 1), 3)
                    for program, seconds in sorted(cpu_used.items(), key=lambda item: -item[1])[:5]
                },
            }
        ),
    )
    # Every request accepted (requests still in flight when wrk stops are stored too).
    assert not non_2xx and requests <= accepted <= requests + CONNECTIONS
