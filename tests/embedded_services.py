"""The test setup's services, as a pytest plugin registered in pyproject.toml's addopts
(`-p tests.embedded_services`, so tests/ and bench/ both have it).

In development (DEBUG on), before pytest-django reads the settings, it starts the embedded PostgreSQL and
Redis for DATABASE_URL / REDIS_URL that the process environment does not set (a .env's addresses may be
those of a stopped `make dev`: they do not count) and stops at the end what it started; once Django is
set up, it creates the development keys and folders the settings name.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from eci_platform.embedded import embedded_services_start, embedded_services_stop
from eci_platform.env_file import debug_on


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> Generator[None, None, None]:
    asked = early_config.known_args_namespace
    development = debug_on() and not (asked.help or asked.version)  # those run no test
    if development:
        early_config.add_cleanup(embedded_services_stop)
        try:
            embedded_services_start()
        except BaseException:
            embedded_services_stop()
            raise
    try:
        yield  # pytest-django reads the settings and sets Django up here
        if development:
            # Imported only now: eci_platform.development imports the apps, which need Django set up.
            from django.conf import settings

            from eci_platform.development import development_files_ensure

            if settings.configured:
                development_files_ensure()
    except BaseException:
        embedded_services_stop()  # a run that fails to start never reaches the clean-up registered above
        raise
