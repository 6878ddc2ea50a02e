"""Counts: the periodic aggregate that the page and /api/counts.json read, the fan-out that refreshes it
for every initiative whose site answers, and the nightly reconciliation with the table (DESIGN, Signing
point 5)."""

from __future__ import annotations

import datetime
import logging
import os
import uuid
from collections.abc import Iterator

import pytest
from celery.contrib.testing.worker import start_worker
from celery.schedules import crontab
from django.core.cache import cache
from django.utils import timezone
from pytest_django.plugin import DjangoDbBlocker

from collection.models import Statement
from collection.selectors import COUNTS_CACHE_KEY, counts_published
from collection.services import counts_reconcile, counts_refresh
from collection.tasks import reconcile_all_counts, reconcile_counts, refresh_all_counts, refresh_counts
from eci_platform.celery import app
from tenants.db import connection
from tenants.models import VISIBLE_STATES, Initiative, InitiativeState
from tests.collection.signing import sign, valid_form
from tests.conftest import client_for

SERVICES_LOGGER = "collection.services"


def make_statement(country: str, *, submitted_ago: datetime.timedelta | None = None) -> Statement:
    """A statement row with made-up sealed bytes: counting is about rows, not sealing."""
    statement = Statement.objects.create(
        country=country,
        form_revision="test",
        key_version=1,
        index_digest=os.urandom(32),
        index_key_version=1,
        sealed_personal_data=os.urandom(64),
    )
    if submitted_ago is not None:  # auto_now_add ignores a value given to create()
        Statement.objects.filter(pk=statement.pk).update(submitted_at=timezone.now() - submitted_ago)
    return statement


def snapshot_write(initiative: Initiative, by_country: dict[str, int], **overrides: object) -> None:
    """Put a snapshot into the initiative's cache key by hand, as a bug or a stray write might."""
    snapshot: dict[str, object] = {
        "schema": initiative.schema_name,
        "total": sum(by_country.values()),
        "by_country": by_country,
        "counted_at": timezone.now().isoformat(),
        **overrides,
    }
    with initiative:
        cache.set(COUNTS_CACHE_KEY, snapshot)


def counts_api(initiative: Initiative) -> dict[str, object]:
    response = client_for(initiative).get("/api/counts.json")
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


def country_count(body: dict[str, object], code: str) -> int:
    countries: dict[str, dict[str, int]] = body["countries"]  # type: ignore[assignment]
    return countries[code]["count"]


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == SERVICES_LOGGER and record.levelno >= logging.WARNING
    ]


@pytest.fixture
def tasks_inline() -> Iterator[None]:
    """Sent tasks run at once, inside this test's transaction; they still carry the schema they were
    sent from (tenant-schemas-celery headers)."""
    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.update(task_always_eager=True, task_eager_propagates=True)
    yield
    app.conf.update(task_always_eager=previous[0], task_eager_propagates=previous[1])


# The periodic aggregate.


# A destroyed initiative's site answers with the counts kept on its destruction record (not refreshed).
@pytest.mark.parametrize("state", sorted(VISIBLE_STATES - {InitiativeState.DESTROYED}))
def test_refresh_all_counts_covers_every_initiative_whose_site_answers(
    alpha: Initiative, tasks_inline: None, state: str
) -> None:
    Initiative.objects.filter(pk=alpha.pk).update(state=state)
    expected = {}
    if state != InitiativeState.READY:  # a ready initiative has no statements yet: it publishes zeros
        with alpha:
            for country in ("AT", "AT", "BE"):
                make_statement(country)
        expected = {"AT": 2, "BE": 1}

    assert refresh_all_counts() >= 2  # alpha and beta at least

    with alpha:
        published = counts_published()
    assert published is not None and published["by_country"] == expected
    body = counts_api(alpha)
    assert body["total"] == sum(expected.values()) and body["counted_at"] == published["counted_at"]
    assert country_count(body, "AT") == expected.get("AT", 0)


@pytest.mark.parametrize("state", [InitiativeState.PROVISIONING, InitiativeState.DESTROYED])
def test_refresh_all_counts_skips_initiatives_without_a_site(
    alpha: Initiative, beta: Initiative, tasks_inline: None, state: str
) -> None:
    Initiative.objects.filter(pk=alpha.pk).update(state=state)
    refresh_all_counts()
    with alpha:
        assert counts_published() is None
    with beta:
        assert counts_published() is not None


def test_the_page_shows_the_published_total_until_the_next_refresh(alpha: Initiative) -> None:
    with alpha:
        make_statement("FR")
        counts_refresh()
        make_statement("FR")
        make_statement("DE")
    # The page reads the aggregate, never the table.
    assert '<span class="count">1</span>' in client_for(alpha).get("/").content.decode()
    with alpha:
        counts_refresh()
    page = client_for(alpha).get("/").content.decode()
    assert '<span class="count">3</span>' in page and '<span class="count">1</span>' not in page


def test_counts_api_reflects_the_refresh(alpha: Initiative) -> None:
    with alpha:
        make_statement("FR")
        first = counts_refresh()
    body = counts_api(alpha)
    assert body["total"] == 1 and country_count(body, "FR") == 1 and body["counted_at"] == first["counted_at"]
    with alpha:
        make_statement("FR")
        make_statement("PL")
        second = counts_refresh()
    body = counts_api(alpha)
    assert body["total"] == 3 and country_count(body, "FR") == 2 and country_count(body, "PL") == 1
    assert body["counted_at"] == second["counted_at"] and str(second["counted_at"]) > str(first["counted_at"])


# The nightly reconciliation.


def test_reconciliation_corrects_a_tampered_snapshot_and_logs_no_personal_data(
    alpha: Initiative, caplog: pytest.LogCaptureFixture
) -> None:
    forms = {"AT": valid_form("AT"), "FR": valid_form("FR")}
    for country, form in forms.items():
        assert sign(alpha, country, form).status_code == 303
    with alpha:
        counts_refresh()
    snapshot_write(alpha, {"AT": 4, "FR": 1})  # more than were ever signed
    caplog.clear()
    caplog.set_level(logging.DEBUG)

    with alpha:
        outcome = counts_reconcile()

    assert outcome.drift == "differs" and outcome.schema == alpha.schema_name
    assert outcome.published_total == 5 and outcome.table_total == 2
    assert outcome.countries == {"AT": (4, 1)}  # FR agreed
    body = counts_api(alpha)
    assert body["total"] == 2 and country_count(body, "AT") == 1 and country_count(body, "FR") == 1
    [warning] = warnings_of(caplog)
    assert "alpha" in warning and "differs" in warning and "AT 4 vs 1" in warning
    assert "total 5 published, 2 in the table" in warning and "FR" not in warning
    for form in forms.values():
        for field in ("first_names", "family_names", "street", "postal_code", "city", "date_of_birth"):
            if field in form:
                assert form[field] not in caplog.text
        if "document_number" in form:
            assert form["document_number"] not in caplog.text


def test_reconciliation_corrects_a_count_below_the_table(
    alpha: Initiative, caplog: pytest.LogCaptureFixture
) -> None:
    with alpha:
        for _ in range(3):
            make_statement("SE", submitted_ago=datetime.timedelta(hours=1))
    snapshot_write(alpha, {"SE": 1})  # counted now, yet missing two statements signed an hour ago
    with alpha:
        outcome = counts_reconcile()
    assert outcome.drift == "differs" and outcome.countries == {"SE": (1, 3)}
    assert country_count(counts_api(alpha), "SE") == 3
    assert ["SE 1 vs 3" in message for message in warnings_of(caplog)] == [True]


def test_reconciliation_corrects_a_total_that_disagrees_with_its_countries(
    alpha: Initiative, caplog: pytest.LogCaptureFixture
) -> None:
    with alpha:
        make_statement("IT", submitted_ago=datetime.timedelta(hours=1))
    snapshot_write(alpha, {"IT": 1}, total=40)
    with alpha:
        outcome = counts_reconcile()
    assert outcome.drift == "differs" and outcome.published_total == 40 and outcome.countries == {}
    assert counts_api(alpha)["total"] == 1
    assert len(warnings_of(caplog)) == 1


def test_reconciliation_does_nothing_when_the_counts_agree(
    alpha: Initiative, caplog: pytest.LogCaptureFixture
) -> None:
    with alpha:
        make_statement("NL", submitted_ago=datetime.timedelta(hours=1))
        make_statement("NL")
        published = counts_refresh()
        make_statement("NL")  # signed since the refresh: the next refresh's, not drift
        outcome = counts_reconcile()
        assert counts_published() == published
    assert outcome.drift == "" and outcome.countries == {}
    assert outcome.published_total == 2 and outcome.table_total == 3
    assert warnings_of(caplog) == []


def test_a_missing_snapshot_is_republished(alpha: Initiative, caplog: pytest.LogCaptureFixture) -> None:
    with alpha:
        make_statement("DK")
        make_statement("DK")
        assert counts_published() is None  # Redis lost it
        outcome = counts_reconcile()
    assert outcome.drift == "missing" and outcome.published_total is None and outcome.table_total == 2
    body = counts_api(alpha)
    assert body["total"] == 2 and body["counted_at"] is not None
    [warning] = warnings_of(caplog)
    assert "alpha" in warning and "missing" in warning


def test_another_initiatives_snapshot_in_the_key_is_replaced(alpha: Initiative, beta: Initiative) -> None:
    with beta:
        make_statement("FI")
        foreign = counts_refresh()
    with alpha:
        make_statement("LU")
        cache.set(COUNTS_CACHE_KEY, foreign)
        outcome = counts_reconcile()
    assert outcome.drift == "malformed"
    body = counts_api(alpha)
    assert country_count(body, "LU") == 1 and country_count(body, "FI") == 0


def test_a_snapshot_the_refresh_stopped_updating_is_republished(alpha: Initiative) -> None:
    with alpha:
        make_statement("PT", submitted_ago=datetime.timedelta(hours=3))
        make_statement("PT", submitted_ago=datetime.timedelta(hours=3))
    # Right two hours ago, and not refreshed since.
    two_hours_ago = (timezone.now() - datetime.timedelta(hours=2)).isoformat()
    snapshot_write(alpha, {"PT": 2}, counted_at=two_hours_ago)
    with alpha:
        make_statement("PT")
        outcome = counts_reconcile()
    assert outcome.drift == "stale" and outcome.countries == {"PT": (2, 3)}
    assert country_count(counts_api(alpha), "PT") == 3


def test_reconciling_or_refreshing_one_initiative_never_touches_another(
    alpha: Initiative, beta: Initiative, tasks_inline: None
) -> None:
    with beta:
        make_statement("FI")
        counts_refresh()
        make_statement("FI")  # beta's table now differs from what it published
    beta_before = counts_api(beta)

    with alpha:
        make_statement("AT")
    snapshot_write(alpha, {"AT": 9})
    with alpha:
        counts_reconcile()
        counts_refresh()
    snapshot_write(alpha, {"AT": 9})
    with alpha:
        reconcile_counts.delay()
        refresh_counts.delay()
    connection.set_schema_to_public()

    assert counts_api(beta) == beta_before and beta_before["total"] == 1
    assert counts_api(alpha)["total"] == 1


def test_reconcile_all_counts_reconciles_every_initiative(
    alpha: Initiative, beta: Initiative, tasks_inline: None, caplog: pytest.LogCaptureFixture
) -> None:
    with alpha:
        make_statement("EE")
    snapshot_write(alpha, {"EE": 3})
    with beta:
        make_statement("LV")  # and nothing published

    assert reconcile_all_counts() >= 2

    assert country_count(counts_api(alpha), "EE") == 1
    assert country_count(counts_api(beta), "LV") == 1
    drifted = warnings_of(caplog)
    assert any("alpha" in message and "differs" in message for message in drifted)
    assert any("beta" in message and "missing" in message for message in drifted)


def test_counts_tasks_are_scheduled() -> None:
    schedule = app.conf.beat_schedule
    assert schedule["refresh-all-counts"]["task"] == refresh_all_counts.name
    nightly = schedule["reconcile-all-counts"]
    assert nightly["task"] == reconcile_all_counts.name
    every = nightly["schedule"]
    assert isinstance(every, crontab)
    # Once a day: one hour, one minute, every day of the week (the stubs do not declare these sets).
    assert len(every.hour) == 1 and len(every.minute) == 1  # type: ignore[attr-defined]
    assert len(every.day_of_week) == 7  # type: ignore[attr-defined]


@pytest.fixture
def committed_alpha_statements(
    django_db_setup: None, django_db_blocker: DjangoDbBlocker
) -> Iterator[Initiative]:
    """Rows a worker thread can see: committed, and removed afterwards."""
    with django_db_blocker.unblock():
        initiative = Initiative.objects.get(slug="alpha")
        with initiative:
            for country in ("CZ", "CZ", "SK"):
                make_statement(country, submitted_ago=datetime.timedelta(hours=1))
        try:
            yield initiative
        finally:
            with initiative:
                Statement.objects.all().delete()
            connection.set_schema_to_public()


def test_reconcile_counts_on_a_real_worker_reports_the_drift_by_ids_and_numbers(
    committed_alpha_statements: Initiative, django_db_blocker: DjangoDbBlocker
) -> None:
    alpha = committed_alpha_statements
    snapshot_write(alpha, {"CZ": 5, "SK": 1})
    queue = f"test-{uuid.uuid4().hex}"  # no other worker on the same Redis takes its messages
    with (
        django_db_blocker.unblock(),
        start_worker(
            app, pool="solo", concurrency=1, queues=[queue], perform_ping_check=False, shutdown_timeout=30
        ),
    ):
        with alpha:
            result = reconcile_counts.apply_async(queue=queue)
        connection.set_schema_to_public()
        outcome = result.get(timeout=30)

    assert outcome == {  # through the JSON result backend: tuples come back as lists
        "schema": alpha.schema_name,
        "drift": "differs",
        "published_total": 6,
        "table_total": 3,
        "countries": {"CZ": [5, 2]},
    }
    with django_db_blocker.unblock():
        assert counts_api(alpha)["total"] == 3
