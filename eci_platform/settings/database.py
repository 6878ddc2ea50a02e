"""PostgreSQL: DATABASE_URL (in development the `dev` runner and the test setup set it to the embedded
server's address when the environment does not)."""

from __future__ import annotations

from urllib.parse import unquote

import environ

from eci_platform.settings.environment import required_service_url

_database = environ.Env.db_url_config(required_service_url("DATABASE_URL", "PostgreSQL"))
# A Unix socket folder as the host, percent-encoded (postgres://user@%2Fpath%2Fto%2Fsocket/db).
if str(_database.get("HOST", "")).upper().startswith("%2F"):
    _database["HOST"] = unquote(str(_database["HOST"]))

# django-tenants sets search_path per session: never put a transaction-mode pooler in front.
# django-tenants' backend, with a cheaper health check (eci_platform/database/base.py).
_database["ENGINE"] = "eci_platform.database"
_database.setdefault("CONN_MAX_AGE", 60)
_database["CONN_HEALTH_CHECKS"] = True
DATABASES = {"default": _database}
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)
