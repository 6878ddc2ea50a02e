"""The operator console's platform overview page and each initiative's published counts (columns of the
initiatives' list, a panel on an initiative's page): aggregates only (tenants/overview.py). Registered on
the console by tenants/admin.py; reachable, like every console page, by verified operators only."""

from __future__ import annotations

import datetime
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.safestring import SafeString

from tenants.models import Initiative
from tenants.overview import PublishedCounts, initiative_published_counts, platform_overview

EMPTY = "\N{EN DASH}"
ACTIVITY_LABELS = {
    "statements_today": "statements of support received today",
    "exports_running": "exports running",
    "exports_queued": "exports queued",
}


def overview_urls(site: admin.AdminSite) -> list[URLPattern]:
    def overview_view(request: HttpRequest) -> HttpResponse:
        today = timezone.localdate()
        day_start = timezone.make_aware(datetime.datetime.combine(today, datetime.time.min))
        overview = platform_overview(today=today, day_start=day_start)
        context = {
            **site.each_context(request),
            "title": "Platform overview",
            "overview": overview,
            "activity": [
                (ACTIVITY_LABELS.get(name, name.replace("_", " ")), number)
                for name, number in overview.activity.items()
            ],
        }
        return TemplateResponse(request, "operator/overview.html", context)

    return [path("overview/", site.admin_view(overview_view), name="overview")]


class PublishedCountsMixin:
    """For InitiativeAdmin: the published counts as columns and as a panel."""

    @staticmethod
    def _counts(initiative: Initiative) -> PublishedCounts | None:
        # Read once per row object (a schema switch and a cache read): the columns below share it.
        if not hasattr(initiative, "_published_counts"):
            initiative._published_counts = initiative_published_counts(initiative)  # type: ignore[attr-defined]
        counts: PublishedCounts | None = initiative._published_counts  # type: ignore[attr-defined]
        return counts

    @admin.display(description="statements (published)")
    def statements_published(self, initiative: Initiative) -> str:
        counts = self._counts(initiative)
        return f"{counts.total:,}" if counts is not None else EMPTY

    @admin.display(description="States at threshold")
    def states_at_threshold(self, initiative: Initiative) -> str:
        counts = self._counts(initiative)
        return f"{counts.states_reached} of {counts.member_states_required}" if counts is not None else EMPTY

    @admin.display(description="published counts per Member State")
    def counts_panel(self, initiative: Initiative) -> SafeString:
        counts = self._counts(initiative) if initiative.pk is not None else None
        if counts is None:
            return SafeString(EMPTY)
        context: dict[str, Any] = {"counts": counts, "initiative": initiative}
        return SafeString(render_to_string("operator/_counts.html", context))
