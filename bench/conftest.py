"""Benchmarks run on a test database of their own, with the template schema and no initiatives."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings
from django.utils import timezone
from pytest_django.plugin import DjangoDbBlocker

from tenants.models import Initiative
from tenants.onboarding import OnboardingRequest, initiative_onboard, template_schema_ensure
from tests.conftest import REGISTER_DATA, keystore  # noqa: F401  (keystore: a fixture)


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


@pytest.fixture
def initiative(django_db_setup: None, django_db_blocker: DjangoDbBlocker) -> Iterator[Initiative]:
    """A committed initiative of the benchmark's own, collecting from today."""
    today = timezone.localdate()
    with django_db_blocker.unblock(), override_settings(KEY_PROPAGATION_SECONDS=0):
        yield initiative_onboard(
            OnboardingRequest(
                slug=f"bench-{uuid.uuid4().hex[:8]}",
                registration_number=f"ECI({today.year}){uuid.uuid4().int % 900000 + 100000:06d}",
                title="Benchmark initiative",
                **REGISTER_DATA,  # type: ignore[arg-type]  # its values have the fields' types
                registered_on=today,
                collection_start=today,
            ),
            actor="bench",
            provision="now",
        )
