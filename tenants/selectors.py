"""Reads on initiatives."""

from __future__ import annotations

import datetime

from django.db.models import QuerySet
from django.utils import timezone

from tenants.models import AuditEvent, Domain, Initiative, InitiativeState


def initiative_for_host(hostname: str) -> Initiative | None:
    """The initiative served on `hostname`, if one is visible there (provisioning ones are not)."""
    domain = Domain.objects.select_related("tenant").filter(domain=hostname.lower()).first()
    if domain is None:
        return None
    initiative: Initiative = domain.tenant
    return initiative if initiative.is_visible else None


def initiatives_awaiting_provisioning(*, older_than: datetime.timedelta) -> QuerySet[Initiative]:
    """Initiatives still provisioning after `older_than`: their task was lost (a broker outage, say)."""
    return Initiative.objects.filter(
        state=InitiativeState.PROVISIONING, created_at__lt=timezone.now() - older_than
    ).order_by("pk")


def initiative_by_slug(slug: str) -> Initiative | None:
    return Initiative.objects.filter(slug=slug).first()


def initiatives_with_domains() -> QuerySet[Initiative]:
    return Initiative.objects.prefetch_related("domains").order_by("slug")


def audit_events(*, initiative: Initiative | None = None, limit: int = 200) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.all()
    if initiative is not None:
        events = events.filter(initiative=initiative)
    return events[:limit]
