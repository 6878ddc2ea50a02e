"""The default connection, typed as django-tenants' wrapper (set_tenant, set_schema_to_public,
schema_name), which is what it is at run time."""

from typing import Any, cast

from django.db import connection as _connection
from django_tenants.postgresql_backend.base import DatabaseWrapper
from django_tenants.utils import get_public_schema_name

connection = cast(DatabaseWrapper, _connection)


def schema_use(tenant: Any) -> None:
    """Point the connection at `tenant`'s schema (an initiative, or None for the public schema). When it
    is on that schema already, the search_path it has set stays: resetting it would cost every request a
    `SET search_path` round trip."""
    schema_name = tenant.schema_name if tenant is not None else get_public_schema_name()
    if connection.schema_name == schema_name and connection.include_public_schema:
        if tenant is not None:
            connection.tenant = tenant  # the same schema; this object may carry a newer state
        return
    if tenant is None:
        connection.set_schema_to_public()
    else:
        connection.set_tenant(tenant)
