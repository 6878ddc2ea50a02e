"""PostgreSQL: DATABASE_URL, or the embedded server when it is unset and DEBUG is on."""

from __future__ import annotations

from urllib.parse import unquote

import environ
from django.core.exceptions import ImproperlyConfigured

from eci_platform.settings.environment import DEBUG, optional

_database_url = optional("DATABASE_URL")
if _database_url:
    _database = environ.Env.db_url_config(_database_url)
    # A Unix socket folder as the host, percent-encoded (postgres://user@%2Fpath%2Fto%2Fsocket/db).
    if str(_database.get("HOST", "")).upper().startswith("%2F"):
        _database["HOST"] = unquote(str(_database["HOST"]))
elif DEBUG:
    from eci_platform.embedded import ensure_postgres

    _database = ensure_postgres().django_settings()
else:
    raise ImproperlyConfigured("The environment variable DATABASE_URL is required.")

# django-tenants sets search_path per session: never put a transaction-mode pooler in front.
# django-tenants' backend, with a cheaper health check (eci_platform/database/base.py).
_database["ENGINE"] = "eci_platform.database"
_database.setdefault("CONN_MAX_AGE", 60)
_database["CONN_HEALTH_CHECKS"] = True
DATABASES = {"default": _database}
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)
