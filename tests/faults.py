"""Faults under load: gunicorn serving the platform against a PostgreSQL and a Redis of its own
(tests/private_services.py), a load generator signing a new person with every request, and in turn a
SIGKILL of one web worker, a restart of PostgreSQL and a restart of Redis. Used by the bounded test that
`make test` runs (tests/eci_platform/test_faults_under_load.py) and by `make bench`
(bench/test_faults_under_load.py), which differ only in how long each phase lasts.

Everything runs on 127.0.0.1, on ports and in folders of the test's own: the machine's servers are never
touched. What is checked afterwards: every receipt the load generator got is a stored statement that
opens to what was sent; no answer was a 500; the platform serves again within a few seconds of the
service's return.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import http.client
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import psycopg

from eci_platform.embedded import REPOSITORY_ROOT
from tests.private_services import PrivatePostgres, PrivateRedis
from tests.processes import UNLIMITED_SIGNING, gunicorn_server, gunicorn_workers, production_environment
from tests.signing_load import csrf_pair, person, solved_proof

PROOF_COST = 1000
COUNTRY = "AT"
SLUG = "faults"
RECEIPT = re.compile(r"^/receipt/([0-9a-f-]{36})/")


@dataclass
class PrivatePlatform:
    """The platform served by gunicorn on its own PostgreSQL and Redis, with one collecting initiative."""

    port: int
    host: str
    initiative_id: int
    environment: dict[str, str]
    server: subprocess.Popen[bytes]
    postgres: PrivatePostgres
    redis: PrivateRedis


def _manage(environment: dict[str, str], *arguments: str) -> dict[str, object]:
    finished = subprocess.run(
        [sys.executable, "manage.py", *arguments, "--json"],
        cwd=REPOSITORY_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    return dict(json.loads(finished.stdout))


@contextlib.contextmanager
def private_platform(workers: int = 3) -> Iterator[PrivatePlatform]:
    """Migrate a fresh cluster as a deployment does (`migrate_platform`), onboard an initiative that
    collects from today, and serve it with production settings (DEBUG off, minus HTTPS)."""
    postgres, redis = PrivatePostgres(), PrivateRedis()
    keys = Path(tempfile.mkdtemp(prefix="eci-faults-keys-"))
    try:
        postgres.start()
        postgres.create_database()
        redis.start()
        environment = production_environment(
            keys,
            DATABASE_URL=postgres.url,
            REDIS_URL=redis.url(0),
            ALTCHA_COST=str(PROOF_COST),
            LOG_LEVEL="WARNING",
            **UNLIMITED_SIGNING,
        )
        _manage(environment, "migrate_platform")
        today = datetime.date.today().isoformat()
        onboarded = _manage(
            environment,
            "onboard_initiative",
            *("--slug", SLUG, "--registration-number", f"ECI({today[:4]})000016"),
            *("--title", "Faults under load", "--subject", "A subject.", "--objectives", "Objectives."),
            *("--register-url", "https://citizens-initiative.europa.eu/initiatives/details/2026/000016_en"),
            *("--contact", "Eva Nowak <representative@example.eu>"),
            *("--contact", "Jens Ørsted <substitute@example.eu>"),
            *("--registered-on", today, "--collection-start", today),
        )
        with psycopg.connect(postgres.url.replace("postgres://", "postgresql://")) as database:
            row = database.execute("SELECT id FROM tenants_initiative WHERE slug = %s", [SLUG]).fetchone()
        assert row is not None
        options = ["--workers", str(workers), "--worker-class", "sync", "--backlog", "2048"]
        with gunicorn_server(environment, *options) as (port, server):
            yield PrivatePlatform(
                port, str(onboarded["domain"]), int(row[0]), environment, server, postgres, redis
            )
    finally:
        redis.remove()
        postgres.remove()
        shutil.rmtree(keys, ignore_errors=True)


@dataclass(frozen=True)
class Answer:
    sent_at: float
    answered_at: float
    status: int  # 0: no answer (the connection broke)
    receipt: str | None
    retry_after: str | None


@dataclass
class Load:
    """Clients that sign continuously, each request a new person with a pre-solved proof, until stopped."""

    platform: PrivatePlatform
    clients: int = 4
    answers: list[Answer] = field(default_factory=list)
    sent: dict[str, dict[str, str]] = field(default_factory=dict)  # receipt -> personal data
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.numbers = itertools.count()
        self.cookie, self.token = csrf_pair(self.platform.port, self.platform.host, COUNTRY)
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(self.clients)]

    def _client(self) -> None:
        headers = {
            "Host": self.platform.host,
            "Cookie": f"csrftoken={self.cookie}",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        while not self.stop.is_set():
            number = next(self.numbers)
            personal_data = person(COUNTRY, number)
            fields = {**personal_data, "declaration": "on", "csrfmiddlewaretoken": self.token}
            body = urlencode({**fields, "altcha": solved_proof(self.platform.initiative_id, PROOF_COST)})
            sent_at = time.monotonic()
            status, receipt, retry_after = 0, None, None
            connection = http.client.HTTPConnection("127.0.0.1", self.platform.port, timeout=30)
            try:
                connection.request("POST", f"/sign/{COUNTRY}/", body, headers)
                response = connection.getresponse()
                response.read()
                status, retry_after = response.status, response.getheader("Retry-After")
                found = RECEIPT.match(response.getheader("Location") or "")
                if status == 303 and found:
                    receipt = found.group(1)
                    self.sent[receipt] = personal_data
            except (OSError, http.client.HTTPException):
                pass  # a worker killed mid-request: no answer, no receipt
            finally:
                connection.close()
            self.answers.append(Answer(sent_at, time.monotonic(), status, receipt, retry_after))
            if status in (0, 503):
                time.sleep(0.05)  # a browser would not retry faster; nor need the tests spin

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def _worker_kill(platform: PrivatePlatform) -> Callable[[], None]:
    workers = gunicorn_workers(platform.server)
    killed = workers[0]
    os.kill(killed, signal.SIGKILL)

    def replaced() -> None:
        """Back once the master has started a new worker in its place."""
        deadline = time.monotonic() + 30
        while True:
            now = gunicorn_workers(platform.server)
            if len(now) == len(workers) and killed not in now:
                return
            assert time.monotonic() < deadline, "gunicorn did not replace the killed worker"
            time.sleep(0.01)

    return replaced


def _postgres_down(platform: PrivatePlatform) -> Callable[[], None]:
    platform.postgres.stop()
    return platform.postgres.start


def _redis_down(platform: PrivatePlatform) -> Callable[[], None]:
    platform.redis.stop()
    return platform.redis.start


# Each takes a service (or a worker) away and returns what brings it back.
FAULTS: dict[str, Callable[[PrivatePlatform], Callable[[], None]]] = {
    "SIGKILL one web worker": _worker_kill,
    "restart PostgreSQL": _postgres_down,
    "restart Redis": _redis_down,
}


@dataclass
class FaultReport:
    fault: str
    requests: int = 0
    receipts: int = 0
    receipts_lost: int = 0
    no_answer: int = 0  # connections broken without an answer (the killed worker's)
    server_errors: dict[int, int] = field(default_factory=dict)  # 5xx by code
    unavailable_without_retry_after: int = 0
    other_statuses: dict[int, int] = field(default_factory=dict)
    down_seconds: float = 0.0
    recovery_seconds: float = 0.0
    receipt_ids: list[str] = field(default_factory=list, repr=False)


def _recovery_seconds(answers: list[Answer], returned_at: float) -> float:
    """From the service's return until the platform serves again: the end of the last failed answer to a
    request sent after the return, or of the first receipt, whichever is later."""
    after = [answer for answer in answers if answer.sent_at >= returned_at]
    first_receipt = min((a.answered_at for a in after if a.receipt), default=float("inf"))
    last_failure = max((a.answered_at for a in after if a.receipt is None), default=returned_at)
    return max(first_receipt, last_failure) - returned_at


def faults_under_load(
    platform: PrivatePlatform, *, steady: float, down: float, after: float, clients: int = 4
) -> tuple[list[FaultReport], Load]:
    """Each fault in turn under one continuous load: `steady` seconds of load, the fault (a service stays
    down `down` seconds and is started again; a killed worker is back once gunicorn has replaced it), then
    `after` seconds of load. Returns a report per fault, and the load."""
    windows: list[tuple[str, float, float, float, float]] = []  # fault, start, down at, back at, end
    with Load(platform, clients=clients) as load:
        for fault, inject in FAULTS.items():
            started = time.monotonic()
            time.sleep(steady)
            down_at = time.monotonic()
            bring_back = inject(platform)
            if inject is not _worker_kill:
                time.sleep(down)  # a service stays away a while; a worker is replaced as fast as can be
            bring_back()
            back_at = time.monotonic()
            time.sleep(after)
            windows.append((fault, started, down_at, back_at, time.monotonic()))
    reports = []
    for fault, started, down_at, back_at, ended in windows:
        answers = [a for a in load.answers if started <= a.sent_at < ended]
        statuses = collections.Counter(answer.status for answer in answers)
        reports.append(
            FaultReport(
                fault=fault,
                requests=len(answers),
                receipts=sum(1 for answer in answers if answer.receipt),
                no_answer=statuses.pop(0, 0),
                server_errors={code: n for code, n in sorted(statuses.items()) if code >= 500},
                unavailable_without_retry_after=sum(
                    1 for answer in answers if answer.status == 503 and not answer.retry_after
                ),
                other_statuses={
                    code: n for code, n in sorted(statuses.items()) if code != 303 and code < 500
                },
                down_seconds=round(back_at - down_at, 2),
                recovery_seconds=round(_recovery_seconds(answers, back_at), 2),
                receipt_ids=[answer.receipt for answer in answers if answer.receipt],
            )
        )
    return reports, load


def receipts_check(platform: PrivatePlatform, load: Load) -> dict[str, list[str]]:
    """Open every statement a receipt was given for, in a process of the platform's own environment."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as receipts:
        json.dump({"initiative": SLUG, "country": COUNTRY, "receipts": load.sent}, receipts)
    try:
        finished = subprocess.run(
            [sys.executable, "-m", "tests.receipts_check", receipts.name],
            cwd=REPOSITORY_ROOT,
            env=platform.environment,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        os.unlink(receipts.name)
    assert finished.returncode == 0, finished.stderr[-2000:]
    return dict(json.loads(finished.stdout))


def lost_receipts_count(reports: list[FaultReport], check: dict[str, list[str]]) -> None:
    """Put the receipts that are not stored as sent into the report of the fault they were given in."""
    lost = set(check["missing"]) | set(check["different"])
    for report in reports:
        report.receipts_lost = sum(1 for receipt in report.receipt_ids if receipt in lost)


def report_table(reports: list[FaultReport]) -> str:
    """The per-fault table, as Markdown (printed by the tests, copied into bench/README.md)."""
    lines = [
        "| fault | requests | receipts | receipts lost | 5xx by code | no answer (killed in flight) "
        "| away s | serving again after s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for report in reports:
        errors = ", ".join(f"{code}: {n}" for code, n in report.server_errors.items()) or "none"
        lines.append(
            f"| {report.fault} | {report.requests} | {report.receipts} | {report.receipts_lost} | {errors} "
            f"| {report.no_answer} | {report.down_seconds} | {report.recovery_seconds} |"
        )
    return "\n".join(lines)


# The platform serves again within this many seconds of the service's (or a worker's) return.
RECOVERY_SECONDS = 10


def faults_under_load_checked(
    *, workers: int, steady: float, down: float, after: float, clients: int
) -> list[FaultReport]:
    """The whole test: the faults under load, then every receipt opened; fails unless no receipt was
    lost, no answer was a 500 (a 503 only with Retry-After), nothing else went wrong and the platform
    served again in time. Prints the table first, so that a failing run shows its figures too."""
    with private_platform(workers=workers) as platform:
        reports, load = faults_under_load(platform, steady=steady, down=down, after=after, clients=clients)
        check = receipts_check(platform, load)
    lost_receipts_count(reports, check)
    print(
        f"\nfaults under load ({workers} sync workers, {clients} clients; per fault {steady} s of load, "
        f"the fault, a service away {down} s, {after} s of load):\n{report_table(reports)}\n"
        f"receipts checked: {check['checked']}, missing: {len(check['missing'])}, "
        f"different: {len(check['different'])}"
    )
    assert check["checked"] == len(load.sent) > 0
    assert check["missing"] == [] and check["different"] == []
    for report in reports:
        assert report.receipts > 0, f"{report.fault}: the load signed nothing"
        assert report.receipts_lost == 0, report
        assert set(report.server_errors) <= {503}, report
        assert report.unavailable_without_retry_after == 0, report
        assert report.other_statuses == {}, report
        assert report.recovery_seconds <= RECOVERY_SECONDS, report
    return reports
