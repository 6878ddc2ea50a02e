"""django-tenants' PostgreSQL backend, with the health check of a persistent connection skipped while the
connection has just proven itself.

With CONN_HEALTH_CHECKS Django sends `SELECT 1` before the first query of every request: a whole round trip
(and server work) on each signature. Connection pools solve this with an alive-bypass window (HikariCP's
default is 500 ms): a connection that finished a request without a connection error moments ago is
trusted for the next one. A server lost inside the window costs one request an error, as it would between
the check and the query anyway; a connection idle for longer is checked as before.
"""

from __future__ import annotations

import time
from typing import Any

from django_tenants.postgresql_backend.base import DatabaseWrapper as TenantDatabaseWrapper

# Seconds a connection stays trusted after a request used it without a connection error.
ALIVE_BYPASS_SECONDS = 0.5


class DatabaseWrapper(TenantDatabaseWrapper):
    health_check_done: bool  # set by Django's base class

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.proven_at = float("-inf")

    def connect(self) -> None:
        super().connect()
        self.proven_at = float("-inf")

    def close_if_unusable_or_obsolete(self) -> None:
        # Called when a request starts and when it ends. `health_check_done` is still set here only when
        # this connection served queries since the last call; errors_occurred says none of them failed
        # for a reason other than the data (Django checks such a connection itself, below).
        if self.connection is not None and self.health_check_done and not self.errors_occurred:
            self.proven_at = time.monotonic()
        super().close_if_unusable_or_obsolete()

    def close_if_health_check_failed(self) -> None:
        if (
            self.connection is not None
            and not self.health_check_done
            and time.monotonic() - self.proven_at < ALIVE_BYPASS_SECONDS
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()
