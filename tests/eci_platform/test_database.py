"""The database backend's health check: skipped for a connection that has just proven itself, kept for
one that was idle, and still replacing a connection the server dropped."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.db import OperationalError, connections

from eci_platform.database.base import ALIVE_BYPASS_SECONDS, DatabaseWrapper
from tenants.db import connection

pytestmark = pytest.mark.django_db


@pytest.fixture
def own_connection() -> Iterator[tuple[DatabaseWrapper, list[int]]]:
    """A connection of the test's own (the test's transaction is on the default one), counting its
    health checks."""
    wrapper = connections.create_connection("default")
    assert isinstance(wrapper, DatabaseWrapper)
    checks: list[int] = []
    real_is_usable = wrapper.is_usable

    def counted_is_usable() -> bool:
        checks.append(1)
        return bool(real_is_usable())

    wrapper.is_usable = counted_is_usable
    yield wrapper, checks
    wrapper.close()


def _request(wrapper: DatabaseWrapper) -> int:
    """What a request does to the connection: the start and end signals' work around one query."""
    wrapper.close_if_unusable_or_obsolete()
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    wrapper.close_if_unusable_or_obsolete()
    return int(backend)


def test_a_connection_used_moments_ago_is_not_checked_again(
    own_connection: tuple[DatabaseWrapper, list[int]],
) -> None:
    wrapper, checks = own_connection
    first = _request(wrapper)  # a new connection is healthy by definition
    assert [_request(wrapper) for _ in range(5)] == [first] * 5
    assert checks == []


def test_a_connection_idle_past_the_window_is_checked(
    own_connection: tuple[DatabaseWrapper, list[int]],
) -> None:
    wrapper, checks = own_connection
    first = _request(wrapper)
    time.sleep(ALIVE_BYPASS_SECONDS + 0.1)
    assert _request(wrapper) == first
    assert checks == [1]


def test_a_connection_the_server_dropped_is_replaced_after_idling(
    own_connection: tuple[DatabaseWrapper, list[int]],
) -> None:
    wrapper, checks = own_connection
    dropped = _request(wrapper)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [dropped])  # waits until it is gone
    time.sleep(ALIVE_BYPASS_SECONDS + 0.1)
    replacement = _request(wrapper)  # no error: the check found the connection dead and reconnected
    assert replacement != dropped and checks == [1]


def test_a_connection_lost_inside_the_window_costs_one_request_only(
    own_connection: tuple[DatabaseWrapper, list[int]],
) -> None:
    wrapper, checks = own_connection
    lost = _request(wrapper)
    wrapper.close_if_unusable_or_obsolete()  # the next request, at once: the connection is trusted
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [lost])  # waits until it is gone
    with pytest.raises(OperationalError), wrapper.cursor() as cursor:
        cursor.execute("SELECT 1")
    wrapper.close_if_unusable_or_obsolete()  # its end: Django checks the failed connection and drops it
    assert checks == [1]
    assert _request(wrapper) != lost  # the request after it, still inside the window, reconnects
