"""Writes in the current initiative's schema."""

from __future__ import annotations

from django.core.cache import cache
from django.utils import timezone

from collection.selectors import COUNTS_CACHE_KEY, statement_counts_by_country
from tenants.db import connection

# Refreshed every minute by beat; a day of slack keeps a page showing the last count during an outage.
COUNTS_TTL_SECONDS = 24 * 3600


def counts_refresh() -> dict[str, object]:
    """Recompute the per-country counts from the table and publish them to the cache.

    Counting never touches a shared counter row in the signing transaction: this periodic aggregate is
    what pages and /api/counts.json read. The cache key is prefixed with the schema by django-tenants.
    """
    counts = statement_counts_by_country()
    snapshot = {
        "schema": connection.schema_name,
        "total": sum(counts.values()),
        "by_country": counts,
        "counted_at": timezone.now().isoformat(),
    }
    cache.set(COUNTS_CACHE_KEY, snapshot, timeout=COUNTS_TTL_SECONDS)
    return snapshot
