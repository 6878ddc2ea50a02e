"""The test database as a DATABASE_URL, for the subprocesses some tests and benchmarks start."""

from __future__ import annotations

from urllib.parse import quote

from tenants.db import connection


def test_database_url() -> str:
    database = connection.settings_dict
    host = database["HOST"] or "127.0.0.1"
    location = quote(host, safe="") if host.startswith("/") else f"{host}:{database['PORT'] or 5432}"
    password = f":{quote(database['PASSWORD'])}" if database.get("PASSWORD") else ""
    return f"postgres://{quote(database['USER'])}{password}@{location}/{database['NAME']}"


test_database_url.__test__ = False  # type: ignore[attr-defined]  # not a test, despite its name
