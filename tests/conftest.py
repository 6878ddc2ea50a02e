"""Shared fixtures: one test database per run with the template schema, and two initiatives (alpha and
beta) created once per run, each with its own schema and domain. Tests run against real PostgreSQL and
Redis (embedded ones when DATABASE_URL / REDIS_URL are unset: tests/embedded_services.py starts them)."""

from __future__ import annotations

import contextlib
import datetime
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.signals import before_task_publish
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.utils import timezone
from pytest_django.plugin import DjangoDbBlocker

from tenants.db import connection
from tenants.keyring.keys import process_key_cache
from tenants.keyring.providers import AwsKmsKeyProvider, key_provider, key_provider_reset
from tenants.models import Initiative
from tenants.onboarding import OnboardingRequest, initiative_onboard, template_schema_ensure
from tenants.register import ContactPerson

# The rest of a complete register entry (REQ-10), in English: what onboarding requires besides the title.
REGISTER_DATA: dict[str, object] = {
    "subject": "A subject as registered.",
    "objectives": "Objectives as registered.",
    "register_url": "https://citizens-initiative.europa.eu/initiatives/details/2026/000001_en",
    "contact_persons": (
        ContactPerson("Eva Nowak", "representative@example.eu"),
        ContactPerson("Jens Ørsted", "substitute@example.eu"),
    ),
}


def onboarding_request(slug: str, serial: int, **overrides: object) -> OnboardingRequest:
    today = timezone.localdate()
    registered_on = today - datetime.timedelta(days=10)
    fields: dict[str, object] = {
        "slug": slug,
        "registration_number": f"ECI({registered_on.year}){serial:06d}",
        "title": f"Initiative {slug}",
        **REGISTER_DATA,
        "registered_on": registered_on,
        "collection_start": today,
        "language": "en",
    }
    fields.update(overrides)
    return OnboardingRequest(**fields)  # type: ignore[arg-type]


RUN_CACHE_PREFIX = f"test-{uuid.uuid4().hex}"


def _redis_database(number: int) -> str:
    from urllib.parse import urlsplit, urlunsplit

    from django.conf import settings

    parts = urlsplit(settings.REDIS_URL)
    return urlunsplit((parts.scheme, parts.netloc, f"/{number}", parts.query, parts.fragment))


@pytest.fixture(scope="session", autouse=True)
def _redis_databases_of_the_tests() -> Iterator[None]:
    """Tests use Redis databases of their own: 14 for the cache (emptied before each test) and 15 for
    Celery messages, where no development worker listens (a `make dev` on the embedded Redis would
    otherwise take them), under a key prefix of the run's own."""
    from django.conf import settings
    from django.test.utils import override_settings

    from eci_platform.celery import app

    cache_settings = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": _redis_database(14),
            "KEY_PREFIX": RUN_CACHE_PREFIX,
        }
    }
    with override_settings(CACHES=cache_settings):
        previous = {
            "broker_url": app.conf.broker_url,
            "result_backend": app.conf.result_backend,
            "broker_transport_options": app.conf.broker_transport_options,
        }
        # Queues under a prefix of this run's own: two runs on one Redis never take each other's tasks.
        transport = {
            **(app.conf.broker_transport_options or {}),
            "global_keyprefix": f"test-{uuid.uuid4().hex}:",
        }
        app.conf.update(
            broker_url=_redis_database(15),
            result_backend=_redis_database(15),
            broker_transport_options=transport,
        )
        yield
        app.conf.update(**previous)


@pytest.fixture(scope="session", autouse=True)
def _signing_lane_in_the_test_client() -> None:
    """Every test client serves as gunicorn does: the signing lane in front of Django's handler."""
    from tests.serving import serving_client_install

    serving_client_install()


@pytest.fixture
def tasks_run_inline() -> Iterator[None]:
    """Tasks sent during the test run at once in this process (Celery's eager mode), as a worker would
    run them, errors included."""
    from eci_platform.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.update(task_always_eager=True, task_eager_propagates=True)
    yield
    app.conf.update(task_always_eager=previous[0], task_eager_propagates=previous[1])


@contextlib.contextmanager
def before_task_publish_seen(sent: list[Any]) -> Iterator[None]:
    """Record (task name, arguments) of each task published to the broker inside the block."""

    def seen(sender: str, body: Any, **_kwargs: Any) -> None:
        sent.append((sender, list(body[0])))

    before_task_publish.connect(seen)
    try:
        yield
    finally:
        before_task_publish.disconnect(seen)


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    """Counters and published counts of one test must not leak into the next (only this run's keys go:
    another run may share the Redis server)."""
    from django.core.cache import cache

    client = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
    # django-tenants puts the schema before the prefix: "<schema>:<prefix>:<version>:<key>".
    keys = list(client.scan_iter(match=f"*:{RUN_CACHE_PREFIX}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(scope="session", autouse=True)
def _cheap_proof_of_work() -> Iterator[None]:
    """Tests solve the anti-bot challenges themselves: keep them cheap (the mechanism is the same)."""
    from django.conf import settings

    previous = settings.ALTCHA_COST, settings.HOST_CACHE_SECONDS, settings.PUBLIC_LOCAL_SECONDS
    settings.ALTCHA_COST = 500
    # Tests change an initiative's state or its counts and expect the next request to see it: no
    # per-process memory of hosts or public answers (tests/collection/test_public_cache.py turns the
    # latter on where it is what is tested).
    settings.HOST_CACHE_SECONDS = 0
    settings.PUBLIC_LOCAL_SECONDS = 0
    yield
    settings.ALTCHA_COST, settings.HOST_CACHE_SECONDS, settings.PUBLIC_LOCAL_SECONDS = previous


def solved_proof(client: Client, **headers: Any) -> str:
    """What the ALTCHA widget posts: a challenge from the site, solved."""
    import base64
    import json

    import altcha

    challenge = client.get("/altcha/challenge.json", **headers).json()
    solution = altcha.solve_challenge(
        challenge["challenge"], challenge["salt"], challenge["algorithm"], challenge["maxnumber"], 0
    )
    assert solution is not None
    payload = {key: challenge[key] for key in ("algorithm", "challenge", "salt", "signature")}
    return base64.b64encode(json.dumps({**payload, "number": solution.number}).encode()).decode()


@pytest.fixture(scope="session")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The local key provider's KEK files for this run: a fresh folder, not the development one."""
    from django.conf import settings

    from tenants.keyring.providers import key_provider_reset

    folder = tmp_path_factory.mktemp("keystore")
    previous = settings.LOCAL_KEYSTORE_DIR
    settings.LOCAL_KEYSTORE_DIR = str(folder)
    key_provider_reset()
    yield folder
    settings.LOCAL_KEYSTORE_DIR = previous
    key_provider_reset()


@pytest.fixture(scope="session")
def django_db_setup(
    keystore: Path,
    django_test_environment: None,
    django_db_blocker: DjangoDbBlocker,
    django_db_keepdb: bool,
    django_db_modify_db_settings: None,
) -> Iterator[None]:
    """The test database for every test that touches it, including the worker tests that commit (and
    so are not marked django_db): pytest-django would create it only for marked tests."""
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        databases = setup_databases(
            verbosity=0,
            interactive=False,
            aliases={"default"},  # type: ignore[arg-type]  # any container of aliases works
            keepdb=django_db_keepdb,
        )
        template_schema_ensure()
        for serial, slug in enumerate(["alpha", "beta"], start=900001):
            if not Initiative.objects.filter(slug=slug).exists():
                initiative_onboard(onboarding_request(slug, serial), actor="test-setup", provision="now")
    yield
    if not django_db_keepdb:
        with django_db_blocker.unblock():
            teardown_databases(databases, verbosity=0)


@pytest.fixture
def alpha(db: None) -> Iterator[Initiative]:
    yield Initiative.objects.get(slug="alpha")
    connection.set_schema_to_public()


@pytest.fixture
def beta(db: None) -> Iterator[Initiative]:
    yield Initiative.objects.get(slug="beta")
    connection.set_schema_to_public()


@pytest.fixture(autouse=True)
def _public_schema_after_each_test() -> Iterator[None]:
    yield
    connection.set_schema_to_public()
    # Key versions a rolled-back test made must not be remembered by the next one.
    process_key_cache.clear()


def host_of(initiative: Initiative) -> str:
    return f"{initiative.slug}.{settings.PLATFORM_DOMAIN}"


@pytest.fixture
def platform_client() -> Client:
    return Client(HTTP_HOST=settings.PLATFORM_DOMAIN)


def client_for(initiative: Initiative) -> Client:
    return Client(HTTP_HOST=host_of(initiative))


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """An AWS-compatible endpoint for the KMS and S3 tests: moto's server, over HTTP on loopback, one
    for the run (each test makes keys and buckets of its own)."""
    from moto.server import ThreadedMotoServer

    from tests.processes import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def operator(platform_client: Client) -> Client:
    """The platform client, signed in as an operator (staff with every permission) with a second factor
    (the sign-in itself is tested over HTTP in tests/tenants/test_second_factor.py)."""
    from tests.second_factor import verified_login

    user = get_user_model().objects.create_user(
        "op", password="a-long-operator-password", is_staff=True, is_superuser=True
    )
    return verified_login(platform_client, user)


@pytest.fixture
def kms(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsKmsKeyProvider]:
    """The aws-kms key provider against moto's KMS, for the test; the configured one again afterwards."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with override_settings(
        KEY_PROVIDER="aws-kms", AWS_KMS_ENDPOINT_URL=moto_endpoint, AWS_REGION="eu-west-1"
    ):
        key_provider_reset()
        provider = key_provider()
        assert isinstance(provider, AwsKmsKeyProvider)
        yield provider
    key_provider_reset()
    process_key_cache.clear()
