"""Metrics and logs of the running platform: gunicorn with two workers and a Celery worker, each with its
metrics endpoint on a port of its own, and JSON log lines with request ids and no personal data."""

from __future__ import annotations

import base64
import json
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import altcha
import pytest
import requests
from celery import Celery
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families
from pytest_django.plugin import DjangoDbBlocker

from eci_platform.embedded import REPOSITORY_ROOT
from tenants.models import Initiative
from tenants.onboarding import initiative_onboard
from tests.collection.signing import valid_form
from tests.conftest import onboarding_request
from tests.processes import committed_initiative_remove, free_port, gunicorn, platform_environment

# What a signatory and someone who fails to sign in typed: none of it may reach a log line or a label.
CANARY_SIGNATORY = {
    "first_names": "Quirinella Canarybird",
    "family_names": "Xylocanary-Vogelsang",
    "street": "Canarystrasse",
    # Not digits alone: a bare number turns up by chance in durations and ids.
    "street_number": "9731-Canaryhof",
    "city": "Canaryburg an der Zwitscher",
    "date_of_birth": "1961-07-23",
    "email": "quirinella.canary@canary-mail.example",
    "email_consent": "on",
}
CANARY_SIGN_IN_EMAIL = "hieronymus.canary@canary-signin.example"
CANARY_VALUES = [*CANARY_SIGNATORY.values(), CANARY_SIGN_IN_EMAIL, "Quirinella", "Xylocanary", "canary-mail"]
CANARY_VALUES.remove("on")


@dataclass
class ServedSite:
    initiative: Initiative
    port: int
    metrics_port: int
    log: Path
    metrics_directory: Path

    @property
    def host(self) -> str:
        return f"{self.initiative.slug}.{settings.PLATFORM_DOMAIN}"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return scrape(self.metrics_port)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def log_lines(path: Path) -> list[dict[str, Any]]:
    """Every line the process printed, each of which must be one JSON object."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert lines, "the process printed nothing"
    parsed = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert isinstance(record, dict), line
        parsed.append(record)
    return parsed


@pytest.fixture(scope="module")
def site(
    django_db_setup: None,
    django_db_blocker: DjangoDbBlocker,
    keystore: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServedSite]:
    """A committed initiative served by gunicorn (two workers, the platform's gunicorn configuration)
    with metrics on a port of their own and JSON logs captured in a file."""
    folder = tmp_path_factory.mktemp("observed")
    metrics_directory = folder / "metrics"
    log = folder / "gunicorn.log"
    metrics_port = free_port()
    with django_db_blocker.unblock():
        initiative = initiative_onboard(onboarding_request("observed", 940001), actor="t", provision="now")
        try:
            environment = platform_environment(
                keystore,
                METRICS_PORT=str(metrics_port),
                METRICS_ADDRESS="127.0.0.1",
                PROMETHEUS_MULTIPROC_DIR=str(metrics_directory),
                LOG_FORMAT="json",
            )
            options = ("-c", "python:eci_platform.gunicorn_config", "--workers", "2")
            with gunicorn(environment, *options, output=log) as port:
                deadline = time.monotonic() + 30
                while True:  # the master serves the metrics once its workers are forked
                    try:
                        requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2)
                        break
                    except requests.ConnectionError:
                        assert time.monotonic() < deadline, "no metrics endpoint"
                        time.sleep(0.2)
                yield ServedSite(initiative, port, metrics_port, log, metrics_directory)
        finally:
            committed_initiative_remove(initiative)


def test_metrics_are_not_served_on_an_initiatives_host_nor_on_the_platform_domain(site: ServedSite) -> None:
    for host in (site.host, settings.PLATFORM_DOMAIN):
        for path in ("/metrics", "/metrics/"):
            answer = requests.get(site.url(path), headers={"Host": host}, timeout=10, allow_redirects=False)
            assert answer.status_code == 404, (host, path)
            assert "# TYPE" not in answer.text and "eci_http_request" not in answer.text
    answer = requests.get(f"http://127.0.0.1:{site.metrics_port}/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")


def _signing_session(site: ServedSite) -> tuple[requests.Session, str]:
    """A browser's visit to the form: its CSRF cookie and token."""
    browser = requests.Session()
    browser.headers["Host"] = site.host
    page = browser.get(site.url("/sign/DE/?lang=en"), timeout=10)
    assert page.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token is not None
    return browser, token.group(1)


def _solved_proof(browser: requests.Session, site: ServedSite) -> str:
    challenge = browser.get(site.url("/altcha/challenge.json"), timeout=10).json()
    solution = altcha.solve_challenge(
        challenge["challenge"], challenge["salt"], challenge["algorithm"], challenge["maxnumber"], 0
    )
    assert solution is not None
    payload = {key: challenge[key] for key in ("algorithm", "challenge", "salt", "signature")}
    return base64.b64encode(json.dumps({**payload, "number": solution.number}).encode()).decode()


def test_a_signing_attempt_over_http_moves_the_counters_and_leaves_no_personal_data_in_logs(
    site: ServedSite,
) -> None:
    before = site.metrics()
    browser, token = _signing_session(site)
    request_id = f"canary-{uuid.uuid4().hex}"
    form = {**valid_form("DE"), **CANARY_SIGNATORY, "csrfmiddlewaretoken": token}
    signed = browser.post(
        site.url("/sign/DE/?lang=en"),
        data={**form, "altcha": _solved_proof(browser, site)},
        headers={"X-Request-ID": request_id},
        timeout=30,
        allow_redirects=False,
    )
    assert signed.status_code == 303, signed.text[:500]
    assert signed.headers["X-Request-ID"] == request_id
    refused = browser.post(
        site.url("/sign/DE/?lang=en"),
        data={**form, "altcha": "not-a-proof"},
        timeout=30,
        allow_redirects=False,
    )
    assert refused.status_code == 403
    generated_id = refused.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated_id)

    # A failed sign-in with a distinctive e-mail address, on the organisers' pages.
    login = browser.get(site.url("/manage/login/"), timeout=10)
    login_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)
    assert login_token is not None
    failed = browser.post(
        site.url("/manage/login/"),
        data={
            "username": CANARY_SIGN_IN_EMAIL,
            "password": "wrong-password-canary",
            "csrfmiddlewaretoken": login_token.group(1),
        },
        timeout=30,
        allow_redirects=False,
    )
    assert failed.status_code in (200, 400, 429) and "password" in failed.text.lower()

    after = site.metrics()
    slug = site.initiative.slug
    attempts = "eci_statement_attempts_total"
    assert value(after, attempts, outcome="accepted", initiative=slug) == (
        value(before, attempts, outcome="accepted", initiative=slug) + 1
    )
    assert value(after, attempts, outcome="proof-invalid", initiative=slug) == (
        value(before, attempts, outcome="proof-invalid", initiative=slug) + 1
    )
    signing_requests = [
        count
        for (name, labels), count in after.items()
        if name == "eci_http_request_duration_seconds_count" and ("view", "sign-form") in labels
    ]
    assert sum(signing_requests) >= 3  # the form, the statement, the refused one
    exposition = requests.get(f"http://127.0.0.1:{site.metrics_port}/metrics", timeout=10).text
    for canary in CANARY_VALUES:
        assert canary not in exposition

    time.sleep(0.5)  # the workers' last lines reach the file
    records = log_lines(site.log)
    text = site.log.read_text(encoding="utf-8")
    for canary in CANARY_VALUES:
        assert canary not in text, f"{canary!r} was logged"
    for request_id_seen in (request_id, generated_id):
        of_the_request = [record for record in records if record.get("request_id") == request_id_seen]
        assert of_the_request, "the request's lines carry its id"
        assert all(record.get("initiative") == slug for record in of_the_request)
    access = [record for record in records if record.get("request_id") == request_id and "view" in record]
    assert access == [access[0]] and access[0]["view"] == "sign-form" and access[0]["status"] == 303
    attempt = [record for record in records if "statement attempt" in record.get("message", "")]
    assert attempt and all(
        record.get("request_id") and record.get("initiative") == slug for record in attempt
    )
    sign_in = [
        record for record in records if record.get("view") == "manage-login" and record["method"] == "POST"
    ]
    assert sign_in and all(record.get("initiative") == slug for record in sign_in)


def test_two_gunicorn_workers_add_up_and_a_dead_workers_counts_stay(site: ServedSite) -> None:
    def probes_counted() -> float:
        return sum(
            count
            for (name, labels), count in site.metrics().items()
            if name == "eci_http_request_duration_seconds_count" and ("view", "livez") in labels
        )

    before = probes_counted()

    def probe() -> None:
        for _ in range(5):
            assert requests.get(site.url("/livez"), timeout=10).status_code == 200

    threads = [threading.Thread(target=probe) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert probes_counted() == before + 40

    # Each worker writes files of its own, which the master sums up.
    writers = {int(path.stem.rsplit("_", 1)[1]) for path in site.metrics_directory.glob("histogram_*.db")}
    assert len(writers) >= 2

    # A worker that dies is replaced; what it counted stays counted.
    victim = writers.pop()
    subprocess.run(["kill", "-KILL", str(victim)], check=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(site.url("/livez"), timeout=5).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert probes_counted() >= before + 40


def test_the_web_endpoint_reads_queues_and_the_platforms_state_at_scrape_time(site: ServedSite) -> None:
    metrics = site.metrics()
    assert value(metrics, "eci_collector_up", collector="queues") == 1
    assert value(metrics, "eci_collector_up", collector="database") == 1
    assert ("eci_celery_queue_length", (("queue", "exports"),)) in metrics
    assert value(metrics, "eci_initiatives", state="collecting") >= 1
    assert ("eci_reencryption_jobs", (("state", "running"),)) in metrics
    assert ("eci_destructions", (("finished", "false"),)) in metrics
    assert ("eci_reencryption_records_remaining", ()) in metrics


def test_a_celery_worker_serves_its_task_counters_and_logs_json_with_the_task(
    site: ServedSite, tmp_path: Path, keystore: Path
) -> None:
    """A real worker (prefork pool, two children) on a queue of this test's own."""
    queue = f"observe-{uuid.uuid4().hex}"
    metrics_port = free_port()
    log, printed = tmp_path / "worker.log", tmp_path / "worker.out"
    # Its broker: the Redis database of the test settings themselves, which the tests leave alone (the
    # cache's database, 14, must hold plain keys only: tests read every one of them).
    environment = platform_environment(
        keystore,
        REDIS_URL=settings.REDIS_URL,
        METRICS_PORT=str(metrics_port),
        METRICS_ADDRESS="127.0.0.1",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        LOG_FORMAT="json",
    )
    command = [sys.executable, "-m", "celery", "-A", "eci_platform", "--quiet", "worker"]
    command += ["--pool", "prefork", "--concurrency", "2", "--queues", queue, "--without-heartbeat"]
    command += ["--without-gossip", "--without-mingle"]
    with log.open("wb") as errors, printed.open("wb") as output:
        worker = subprocess.Popen(command, cwd=REPOSITORY_ROOT, env=environment, stdout=output, stderr=errors)
    # Through the worker's broker to this test's own queue; not made the current app, which the other
    # tests' task_send uses.
    sender = Celery(broker=environment["REDIS_URL"], set_as_current=False)
    try:
        schema = {"_schema_name": site.initiative.schema_name}
        succeeded = sender.send_task("default.refresh_counts", queue=queue, headers=schema)
        failed = sender.send_task("default.refresh_counts", args=[1], queue=queue, headers=schema)
        deadline = time.monotonic() + 60
        while True:
            try:
                metrics = scrape(metrics_port)
            except (requests.ConnectionError, ValueError):
                # Not listening yet, or (seen once) another process answered on the port meanwhile.
                metrics = {}
            done = value(
                metrics, "eci_task_duration_seconds_count", task="default.refresh_counts", outcome="success"
            )
            if done >= 1 and value(metrics, "eci_task_failures_total", task="default.refresh_counts") >= 1:
                break
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        with sender.connection_for_write() as broker:  # what the queue and the results left in Redis
            channel: Any = broker.default_channel  # kombu's Redis channel
            channel.client.delete(
                queue,
                f"_kombu.binding.{queue}",
                f"_kombu.binding_permanent.{queue}",
                f"celery-task-meta-{succeeded.id}",
                f"celery-task-meta-{failed.id}",
            )
        sender.close()

    records = log_lines(log)
    # Celery's shutdown handler prints this on stdout itself, whatever the logging.
    assert printed.read_text().strip() in ("", "worker: Warm shutdown (MainProcess)")
    of_the_failure = [record for record in records if record.get("task_id") == failed.id]
    assert of_the_failure and all(
        record["task_name"] == "default.refresh_counts" for record in of_the_failure
    )
    assert all(record.get("initiative") == site.initiative.slug for record in of_the_failure)
    assert any(record["level"] == "ERROR" for record in of_the_failure)
    assert succeeded.id not in {record.get("task_id") for record in of_the_failure}


def test_a_metrics_port_that_is_no_number_stops_start_up_with_a_message() -> None:
    shown = subprocess.run(
        [sys.executable, "-c", "import eci_platform"],
        cwd=REPOSITORY_ROOT,
        env=platform_environment(Path("unused"), METRICS_PORT="ninety-one"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode != 0 and "METRICS_PORT must be a port number, not 'ninety-one'" in shown.stderr


@pytest.mark.django_db
def test_an_unreachable_broker_is_reported_at_once_and_the_rest_still_read() -> None:
    from eci_platform.metrics.exposition import PlatformStateCollector

    unreachable = Celery(broker=f"redis://127.0.0.1:{free_port()}/0", set_as_current=False)
    started = time.monotonic()
    families = {family.name: family for family in PlatformStateCollector(unreachable).collect()}
    assert time.monotonic() - started < 10, "a scrape must not wait for the broker to come back"
    assert "eci_celery_queue_length" not in families
    up = {sample.labels["collector"]: sample.value for sample in families["eci_collector_up"].samples}
    assert up == {"queues": 0, "database": 1}
    assert "eci_initiatives" in families
    unreachable.close()
