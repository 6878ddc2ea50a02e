"""Reads on initiatives."""

from __future__ import annotations

import datetime
import time

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from tenants.models import Domain, Initiative, InitiativeState

# Host name -> (valid until, initiative or None), per process: the lookup happens on every request.
_hosts: dict[str, tuple[float, Initiative | None]] = {}


def initiative_for_host(hostname: str) -> Initiative | None:
    """The initiative served on `hostname`, if one is visible there (provisioning ones are not).
    Remembered for HOST_CACHE_SECONDS, so a change of state reaches every process within that time."""
    hostname = hostname.lower()
    remembered = _hosts.get(hostname)
    if remembered is not None and remembered[0] > time.monotonic():
        return remembered[1]
    domain = Domain.objects.select_related("tenant").filter(domain=hostname).first()
    initiative: Initiative | None = domain.tenant if domain is not None else None
    if initiative is not None and not initiative.is_visible:
        initiative = None
    if settings.HOST_CACHE_SECONDS > 0:
        if len(_hosts) > 10_000:  # unknown hosts must not grow it without end
            _hosts.clear()
        _hosts[hostname] = (time.monotonic() + settings.HOST_CACHE_SECONDS, initiative)
    return initiative


def initiatives_awaiting_provisioning(*, older_than: datetime.timedelta) -> QuerySet[Initiative]:
    """Initiatives still provisioning after `older_than`: their task was lost (a broker outage, say)."""
    return Initiative.objects.filter(
        state=InitiativeState.PROVISIONING, created_at__lt=timezone.now() - older_than
    ).order_by("pk")


def initiative_by_slug(slug: str) -> Initiative | None:
    return Initiative.objects.filter(slug=slug).first()


def initiatives_with_schema() -> QuerySet[Initiative]:
    """Initiatives whose schema exists and holds data: provisioned and not destroyed."""
    return Initiative.objects.exclude(
        state__in=[InitiativeState.PROVISIONING, InitiativeState.DESTROYED]
    ).order_by("pk")
