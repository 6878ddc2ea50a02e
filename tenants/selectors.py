"""Reads on initiatives."""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from regulation.periods import authorities_submission_deadline
from regulation.retention import emails_destruction_deadline, statements_destruction_deadline
from tenants.models import (
    DestructionRecord,
    DestructionScope,
    Domain,
    Initiative,
    InitiativeState,
    LegalHold,
)

# How long before the REQ-25 deadline organisers and operators are warned that it nears.
SUBMISSION_WARNING_PERIOD = datetime.timedelta(days=21)

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


@dataclass(frozen=True)
class InitiativeDeadlines:
    """An initiative's legal deadlines and what stands in their way or has met them."""

    # REQ-25: the last day to send the statements to the authorities; None while collection runs.
    authorities_submission: datetime.date | None
    statements_destruction: datetime.date  # REQ-18
    emails_destruction: datetime.date  # REQ-19
    active_hold: LegalHold | None
    statements_destroyed: DestructionRecord | None  # finished destruction records
    emails_destroyed: DestructionRecord | None

    def submission_due_soon(self, today: datetime.date) -> bool:
        """The REQ-25 deadline is near or past and the initiative has not gone further."""
        return (
            self.authorities_submission is not None
            and self.statements_destroyed is None
            and today >= self.authorities_submission - SUBMISSION_WARNING_PERIOD
        )


def initiative_deadlines(initiative: Initiative) -> InitiativeDeadlines:
    records = {
        record.scope: record
        for record in DestructionRecord.objects.filter(initiative=initiative, finished_at__isnull=False)
    }
    submission = None
    if initiative.closed_on is not None and initiative.state == InitiativeState.CLOSED:
        submission = authorities_submission_deadline(initiative.closed_on)
    return InitiativeDeadlines(
        authorities_submission=submission,
        statements_destruction=statements_destruction_deadline(
            collection_start=initiative.collection_start,
            submitted_on=initiative.submitted_on,
            withdrawn_on=initiative.withdrawn_on,
        ),
        emails_destruction=emails_destruction_deadline(
            collection_start=initiative.collection_start,
            submitted_on=initiative.submitted_on,
            withdrawn_on=initiative.withdrawn_on,
            closed_on=initiative.closed_on,
        ),
        active_hold=initiative_active_hold(initiative),
        statements_destroyed=records.get(DestructionScope.STATEMENTS),
        emails_destroyed=records.get(DestructionScope.EMAILS),
    )


def initiative_active_hold(initiative: Initiative) -> LegalHold | None:
    return LegalHold.objects.filter(initiative=initiative, lifted_at__isnull=True).first()
