"""Fail loudly when code queries a tenant table while the connection is on the public schema.

Without it such a query fails with a vague "relation does not exist" (or, worse, would find a table of
the same name in public). The check is a substring search over a handful of table names per query,
cheap enough to stay on in production (TENANT_TABLE_GUARD)."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db.backends.signals import connection_created
from django_tenants.utils import get_public_schema_name


class PublicSchemaTenantTableError(RuntimeError):
    """A tenant table was queried while the connection was on the public schema."""


@cache
def _tenant_table_pattern() -> re.Pattern[str] | None:
    shared = set(settings.SHARED_APPS)
    tenant_only = [app.split(".")[-1] for app in settings.TENANT_APPS if app not in shared]
    tables = sorted(
        model._meta.db_table
        for label in tenant_only
        for model in apps.get_app_config(label).get_models(include_auto_created=True)
    )
    if not tables:
        return None
    # Quoted (the ORM) or bare (hand-written SQL) table names, as whole identifiers.
    names = "|".join(re.escape(table) for table in tables)
    return re.compile(rf'(?<![\w."])"?({names})"?(?![\w])', re.IGNORECASE)


def _guard(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    connection = context["connection"]
    if getattr(connection, "schema_name", None) == get_public_schema_name():
        pattern = _tenant_table_pattern()
        if pattern is not None and isinstance(sql, str):
            found = pattern.search(sql)
            if found:
                raise PublicSchemaTenantTableError(
                    f"Tenant table {found.group(1)} queried on the public schema: activate an initiative "
                    "first (request routing, `with initiative:` or a tenant-aware task)."
                )
    return execute(sql, params, many, context)


def _install_on(sender: Any, connection: Any, **kwargs: Any) -> None:
    if _guard not in connection.execute_wrappers:
        connection.execute_wrappers.append(_guard)


def install() -> None:
    if getattr(settings, "TENANT_TABLE_GUARD", True):
        connection_created.connect(_install_on, dispatch_uid="tenant_table_guard")
