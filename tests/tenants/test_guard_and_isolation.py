"""The public-schema guard and tenant isolation: tenant B cannot see or change tenant A's rows through
the ORM, a Host header or a task."""

from __future__ import annotations

import os
import uuid

import pytest
from pytest_django.plugin import DjangoDbBlocker

from collection.models import Statement
from collection.services import counts_refresh
from tenants.db import connection
from tenants.guard import PublicSchemaTenantTableError
from tenants.models import Initiative
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def make_statement(country: str, digest: bytes | None = None) -> Statement:
    """A statement row with made-up sealed bytes: these tests are about rows and schemas, not sealing."""
    return Statement.objects.create(
        country=country,
        form_revision="test",
        key_version=1,
        index_digest=digest or os.urandom(32),
        index_key_version=1,
        sealed_personal_data=os.urandom(64),
    )


def test_guard_raises_on_a_tenant_table_from_the_public_schema() -> None:
    connection.set_schema_to_public()
    with pytest.raises(PublicSchemaTenantTableError, match="collection_statement"):
        Statement.objects.count()
    with pytest.raises(PublicSchemaTenantTableError):
        make_statement("AT")


def test_guard_also_catches_hand_written_sql() -> None:
    connection.set_schema_to_public()
    with pytest.raises(PublicSchemaTenantTableError), connection.cursor() as cursor:
        cursor.execute("select count(*) from collection_statement")


def test_guard_lets_shared_tables_through_on_public_and_tenant_tables_on_a_tenant(alpha: Initiative) -> None:
    connection.set_schema_to_public()
    assert Initiative.objects.filter(slug="alpha").exists()
    with alpha:
        assert Statement.objects.count() == 0


def test_orm_rows_of_one_initiative_are_invisible_to_another(alpha: Initiative, beta: Initiative) -> None:
    with alpha:
        mine = make_statement("DE")
    with beta:
        assert Statement.objects.count() == 0
        assert not Statement.objects.filter(pk=mine.pk).exists()
        assert Statement.objects.filter(pk=mine.pk).update(country="FR") == 0
        assert Statement.objects.filter(pk=mine.pk).delete()[0] == 0
    with alpha:
        assert Statement.objects.get(pk=mine.pk).country == "DE"


def test_the_same_index_digest_may_exist_in_two_initiatives(alpha: Initiative, beta: Initiative) -> None:
    digest = os.urandom(32)
    for initiative in (alpha, beta):
        with initiative:
            make_statement("AT", digest)
    with alpha:
        assert Statement.objects.filter(index_digest=digest).count() == 1


def test_a_host_header_only_reaches_its_own_initiative(alpha: Initiative, beta: Initiative) -> None:
    with alpha:
        for _ in range(3):
            make_statement("AT")
        counts_refresh()
    with beta:
        counts_refresh()

    alpha_page = client_for(alpha).get("/").content.decode()
    beta_page = client_for(beta).get("/").content.decode()
    assert alpha.registration_number in alpha_page and beta.registration_number not in alpha_page
    assert beta.registration_number in beta_page and alpha.registration_number not in beta_page
    assert '<span class="count">3</span>' in alpha_page
    assert '<span class="count">0</span>' in beta_page


def test_counts_published_in_the_cache_are_kept_per_schema(alpha: Initiative, beta: Initiative) -> None:
    with alpha:
        make_statement("SE")
        published_alpha = counts_refresh()
    with beta:
        published_beta = counts_refresh()
    assert published_alpha["by_country"] == {"SE": 1} and published_alpha["schema"] == alpha.schema_name
    assert published_beta["by_country"] == {} and published_beta["schema"] == beta.schema_name


def test_statement_ids_are_random_uuids(alpha: Initiative) -> None:
    with alpha:
        statement = make_statement("PL")
    assert isinstance(statement.pk, uuid.UUID) and statement.pk.version == 4


def test_after_a_rollback_queries_still_run_in_the_right_schema(
    django_db_setup: None, django_db_blocker: DjangoDbBlocker
) -> None:
    """PostgreSQL undoes a SET search_path issued inside a transaction that rolls back; the backend
    must notice, or the next query would run in the schema the session was on before."""
    from django.db import IntegrityError, transaction

    digest = os.urandom(32)
    with django_db_blocker.unblock():  # committed rows, real transactions (no test transaction around)
        alpha, beta = Initiative.objects.get(slug="alpha"), Initiative.objects.get(slug="beta")
        try:
            with beta:
                make_statement("FI")
            with alpha:
                make_statement("AT", digest)
            connection.set_tenant(beta)
            assert list(Statement.objects.values_list("country", flat=True)) == ["FI"]  # session on beta
            connection.set_tenant(alpha)  # its SET search_path comes with the next query, in the transaction
            with pytest.raises(IntegrityError), transaction.atomic():
                make_statement("AT", digest)
            assert list(Statement.objects.values_list("country", flat=True)) == ["AT"], "not beta's rows"
        finally:
            for initiative in (alpha, beta):
                with initiative:
                    Statement.objects.all().delete()
            connection.set_schema_to_public()
