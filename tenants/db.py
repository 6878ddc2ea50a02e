"""The default connection, typed as django-tenants' wrapper (set_tenant, set_schema_to_public,
schema_name), which is what it is at run time."""

from typing import cast

from django.db import connection as _connection
from django_tenants.postgresql_backend.base import DatabaseWrapper

connection = cast(DatabaseWrapper, _connection)
