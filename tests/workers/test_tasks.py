"""Background work: a task sent in a tenant's context runs in that tenant's schema, through the real
Redis broker and a real Celery worker; tasks take ids only; routing by name."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import OperationalError
from pytest_django.plugin import DjangoDbBlocker

from collection.models import Statement
from collection.tasks import refresh_counts
from eci_platform.celery import app
from tenants.db import connection
from tenants.models import Initiative
from tenants.tasks import provision_initiative
from workers.base import PlatformTask, TaskArgumentError, _check_ids_only, platform_task
from workers.routing import route_by_name_prefix


@pytest.fixture
def committed_statements(
    django_db_setup: None, django_db_blocker: DjangoDbBlocker
) -> Iterator[dict[str, Initiative]]:
    """Rows the worker thread can see: committed, and removed afterwards."""
    with django_db_blocker.unblock():
        tenants = {slug: Initiative.objects.get(slug=slug) for slug in ("alpha", "beta")}
        with tenants["alpha"]:
            for country in ("AT", "AT", "BE"):
                Statement.objects.create(
                    country=country,
                    form_revision="t",
                    key_version=1,
                    index_digest=os.urandom(32),
                    index_key_version=1,
                    sealed_personal_data=b"x",
                )
        with tenants["beta"]:
            Statement.objects.create(
                country="FI",
                form_revision="t",
                key_version=1,
                index_digest=os.urandom(32),
                index_key_version=1,
                sealed_personal_data=b"x",
            )
        try:
            yield tenants
        finally:
            for initiative in tenants.values():
                with initiative:
                    Statement.objects.all().delete()
            connection.set_schema_to_public()


def test_task_sent_from_a_tenant_runs_in_that_tenants_schema_on_a_real_worker(
    committed_statements: dict[str, Initiative], django_db_blocker: DjangoDbBlocker
) -> None:
    # A queue of this test's own, so no other worker on the same Redis can take its messages.
    queue = f"test-{uuid.uuid4().hex}"
    with (
        django_db_blocker.unblock(),
        start_worker(
            app, pool="solo", concurrency=1, queues=[queue], perform_ping_check=False, shutdown_timeout=30
        ),
    ):
        results = {}
        for slug, initiative in committed_statements.items():
            with initiative:
                results[slug] = refresh_counts.apply_async(queue=queue)
        connection.set_schema_to_public()
        outcome = {slug: result.get(timeout=30) for slug, result in results.items()}

    assert outcome["alpha"]["schema"] == committed_statements["alpha"].schema_name
    assert outcome["alpha"]["by_country"] == {"AT": 2, "BE": 1}
    assert outcome["beta"]["schema"] == committed_statements["beta"].schema_name
    assert outcome["beta"]["by_country"] == {"FI": 1}


def test_tasks_refuse_anything_but_ids() -> None:
    for bad in ({"name": "Jane"}, ["x"], 1.5, True, "Jane Doe", "jane@example.org", "AB123456", "x" * 65):
        with pytest.raises(TaskArgumentError):
            provision_initiative.apply_async(args=[bad])
    with pytest.raises(TaskArgumentError):
        provision_initiative.apply_async(kwargs={"initiative_id": {"nested": 1}})
    # Ids pass: integers, UUIDs and their text.
    for good in (7, uuid.uuid4(), str(uuid.uuid4())):
        _check_ids_only([good], {})


def test_tasks_have_explicit_names_and_retry_only_transient_errors() -> None:
    platform_tasks = [task for name, task in app.tasks.items() if isinstance(task, PlatformTask)]
    assert platform_tasks, "the platform's tasks are registered"
    for task in platform_tasks:
        assert task.name.split(".", 1)[0] in ("default", "exports", "keys", "maintenance")
        assert ValueError not in task.autoretry_for and Exception not in task.autoretry_for
        assert task.retry_backoff and task.max_retries
    with pytest.raises(ValueError, match="must start with its queue"):
        platform_task("nowhere.task")


def test_routing_by_name_prefix() -> None:
    assert route_by_name_prefix("maintenance.provision_initiative", (), {}, {}) == {"queue": "maintenance"}
    assert route_by_name_prefix("exports.run", (), {}, {}) == {"queue": "exports"}
    assert route_by_name_prefix("celery.backend_cleanup", (), {}, {}) == {"queue": "default"}


attempts: dict[str, int] = {}


@platform_task("default.test_flaky")
def flaky(kind: str) -> int:
    attempts[kind] = attempts.get(kind, 0) + 1
    if kind == "transient" and attempts[kind] < 3:
        raise OperationalError("connection lost")
    if kind == "bug":
        raise ValueError("a bug is not retried")
    return attempts[kind]


def test_transient_errors_are_retried_and_bugs_are_not() -> None:
    attempts.clear()
    assert flaky.apply(args=["transient"]).get() == 3
    outcome = flaky.apply(args=["bug"])
    assert isinstance(outcome.result, ValueError)
    assert attempts["bug"] == 1
