"""Benchmarks run on a test database of their own, with the template schema and no initiatives."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_django.plugin import DjangoDbBlocker

from tenants.services import template_schema_ensure
from tests.conftest import keystore  # noqa: F401  (a fixture)


@pytest.fixture(scope="session")
def django_db_setup(
    keystore: Path,  # noqa: F811  (the fixture imported above)
    django_test_environment: None,
    django_db_blocker: DjangoDbBlocker,
    django_db_modify_db_settings: None,
) -> Iterator[None]:
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        databases = setup_databases(
            verbosity=0,
            interactive=False,
            aliases={"default"},  # type: ignore[arg-type]  # any container of aliases works
        )
        template_schema_ensure()
    yield
    with django_db_blocker.unblock():
        teardown_databases(databases, verbosity=0)
