"""For tests and benchmarks that start processes of the platform (gunicorn, a worker, a writer) against
the test database, and that commit initiatives of their own."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from django.conf import settings

from eci_platform.embedded import REPOSITORY_ROOT
from tenants.db import connection
from tenants.models import (
    CertifiedCount,
    DataKey,
    DestructionRecord,
    Domain,
    Initiative,
    KeyEncryptionKey,
    LegalHold,
    ReencryptionJob,
)


def test_database_url() -> str:
    database = connection.settings_dict
    host = database["HOST"] or "127.0.0.1"
    location = quote(host, safe="") if host.startswith("/") else f"{host}:{database['PORT'] or 5432}"
    password = f":{quote(database['PASSWORD'])}" if database.get("PASSWORD") else ""
    return f"postgres://{quote(database['USER'])}{password}@{location}/{database['NAME']}"


test_database_url.__test__ = False  # type: ignore[attr-defined]  # not a test, despite its name


def platform_environment(keystore: Path, **extra: str) -> dict[str, str]:
    """What a process of the platform needs to share this run's database, cache and keys."""
    return {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": settings.REDIS_URL.rsplit("/", 1)[0] + "/14",  # the tests' cache database
        "LOCAL_KEYSTORE_DIR": str(keystore),
        "LOCAL_MASTER_KEY_FILE": settings.LOCAL_MASTER_KEY_FILE,
        "EXPORT_STORAGE_URL": settings.EXPORT_STORAGE_URL,
        "EXPORT_SIGNING_KEY_FILE": settings.EXPORT_SIGNING_KEY_FILE,
        "EXPORT_SIGNING_CERTIFICATE_FILE": settings.EXPORT_SIGNING_CERTIFICATE_FILE,
        **extra,
    }


# The rate limits lifted: a load test's requests all come from 127.0.0.1.
UNLIMITED_SIGNING = {
    name: "100000000"
    for name in (
        "RATE_LIMIT_ADDRESS_SOFT",
        "RATE_LIMIT_ADDRESS_HARD",
        "RATE_LIMIT_NETWORK_SOFT",
        "RATE_LIMIT_NETWORK_HARD",
    )
}


def production_environment(keystore: Path, **extra: str) -> dict[str, str]:
    """A platform process with the production settings (DEBUG off and every production variable set),
    minus HTTPS: the load generators speak plain HTTP on loopback. Signing sends no e-mail; the SMTP
    address is never connected to."""
    return platform_environment(
        keystore,
        DEBUG="0",
        SECRET_KEY=settings.SECRET_KEY,  # this process solves the proofs of work the server checks
        PLATFORM_DOMAIN=settings.PLATFORM_DOMAIN,
        KEY_PROVIDER="local",
        SECURE_SSL_REDIRECT="0",
        OPERATOR_NAME="Test operator",
        OPERATOR_CONTACT_EMAIL="privacy@operator.example.eu",
        EMAIL_URL="smtp://127.0.0.1:1",
        EMAIL_FROM="no-reply@operator.example.eu",
        SECURITY_CONTACT_EMAIL="security@operator.example.eu",
        **extra,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def gunicorn(
    environment: dict[str, str],
    *options: str,
    application: str = "eci_platform.wsgi",
    output: Path | None = None,
) -> Iterator[int]:
    """gunicorn serving the platform (or another WSGI `application`) on a free loopback port, until the
    block ends; what it prints goes to the file `output` if given."""
    with gunicorn_server(environment, *options, application=application, output=output) as (port, _server):
        yield port


def gunicorn_workers(server: subprocess.Popen[bytes]) -> list[int]:
    """The process ids of a gunicorn master's workers (its children)."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text()
    return [int(pid) for pid in children.split()]


@contextlib.contextmanager
def gunicorn_server(
    environment: dict[str, str],
    *options: str,
    application: str = "eci_platform.wsgi",
    output: Path | None = None,
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """As `gunicorn`, with the master's process as well (to find and signal its workers)."""
    port = free_port()
    printed = output.open("ab") if output is not None else None
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", application, "--bind", f"127.0.0.1:{port}", *options],
        cwd=REPOSITORY_ROOT,
        env=environment,
        stdout=printed or subprocess.DEVNULL,
        stderr=printed or subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        yield port, server
    finally:
        server.send_signal(signal.SIGINT)  # quick shutdown: nothing is in flight once the test is done
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if printed is not None:
            printed.close()


def committed_initiative_remove(initiative: Initiative) -> None:
    """Remove an initiative a test committed: its schema and every row about it."""
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA IF EXISTS "{initiative.schema_name}" CASCADE')
    ReencryptionJob.objects.filter(initiative=initiative).delete()
    LegalHold.objects.filter(initiative=initiative).delete()
    CertifiedCount.objects.filter(initiative=initiative).delete()
    DestructionRecord.objects.filter(initiative_slug=initiative.slug).delete()
    DataKey.objects.filter(initiative=initiative).delete()
    KeyEncryptionKey.objects.filter(initiative=initiative).delete()
    # Its audit events stay (the table refuses DELETE); they keep the initiative's id and slug.
    Domain.objects.filter(tenant=initiative).delete()
    Initiative.objects.filter(pk=initiative.pk).delete()
