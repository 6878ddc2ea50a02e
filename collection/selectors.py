"""Reads in the current initiative's schema."""

from __future__ import annotations

from django.core.cache import cache
from django.db.models import Count

from collection.models import Statement

# Written by collection.services.counts_refresh; the key is prefixed with the schema by django-tenants.
COUNTS_CACHE_KEY = "statement-counts"


def statement_counts_by_country() -> dict[str, int]:
    """Statements per country, straight from the table (the slow, exact count)."""
    rows = Statement.objects.values("country").annotate(total=Count("id")).order_by("country")
    return {row["country"]: row["total"] for row in rows}


def counts_published() -> dict[str, object] | None:
    """The last published aggregate (see collection.services.counts_refresh), or None before the first."""
    cached: dict[str, object] | None = cache.get(COUNTS_CACHE_KEY)
    return cached
