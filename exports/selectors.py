"""Reads of the exports app, in the current initiative's schema."""

from __future__ import annotations

import datetime

from django.db.models import Q, QuerySet
from django.utils import timezone

from exports.models import UNFINISHED_EXPORT_STATES, ExportBatch, ExportJob, ExportJobState
from tenants.models import (
    AuditEvent,
    DestructionRecord,
    DestructionScope,
    Initiative,
    InitiativeState,
    OrganiserMembership,
)

# DESIGN "Lifecycle and retention": exports run once collection has ended, and no earlier; after a
# withdrawal nothing goes to the authorities.
EXPORT_STATES = (InitiativeState.CLOSED, InitiativeState.SUBMITTED)

# A queued job nobody claimed within this time lost its message (a broker outage, say).
UNCLAIMED_GRACE = datetime.timedelta(minutes=2)


def export_unavailable_reason(initiative: Initiative) -> str | None:
    """Why the initiative's statements cannot be exported now, or None when they can. The state is read
    from the database, not from the given object: a tenant object may be remembered by the host lookup
    or held by a worker for a while, and a job queued earlier must see a withdrawal made since."""
    destruction = (
        DestructionRecord.objects.filter(initiative_id=initiative.pk, scope=DestructionScope.STATEMENTS)
        .order_by("started_at")
        .first()
    )
    if destruction is not None:
        # A run killed halfway has already deleted some of them: a partial export is no export.
        if destruction.finished_at is not None:
            return (
                "The initiative's statements were destroyed on "
                f"{timezone.localdate(destruction.finished_at).isoformat()} (REQ-18): there is nothing "
                "left to export."
            )
        return (
            "The destruction of the initiative's statements (REQ-18) began on "
            f"{timezone.localdate(destruction.started_at).isoformat()}: they can no longer be exported."
        )
    state = Initiative.objects.filter(pk=initiative.pk).values_list("state", flat=True).first()
    if state not in EXPORT_STATES:
        return (
            f"Exports run once collection has closed ({' or '.join(EXPORT_STATES)}); "
            f"the initiative is {state or 'gone'}."
        )
    return None


def export_jobs_to_resume() -> QuerySet[ExportJob]:
    """Jobs to send again: running with an expired lease (a killed worker), or queued and never claimed."""
    now = timezone.now()
    return ExportJob.objects.filter(
        Q(state=ExportJobState.RUNNING, lease_until__lt=now)
        | Q(state=ExportJobState.QUEUED, lease_until__isnull=True, requested_at__lt=now - UNCLAIMED_GRACE)
    ).order_by("pk")


def export_jobs_recent(limit: int = 200) -> QuerySet[ExportJob]:
    """The initiative's export history, newest first."""
    return ExportJob.objects.select_related("batch").order_by("-requested_at", "-pk")[:limit]


def export_batches_recent(limit: int = 50) -> QuerySet[ExportBatch]:
    """The initiative's "all countries" requests, newest first."""
    return ExportBatch.objects.order_by("-requested_at", "-pk")[:limit]


def export_jobs_unfinished_exist() -> bool:
    """Whether a job is still queued or running (the organisers' page then reloads itself)."""
    return ExportJob.objects.filter(state__in=UNFINISHED_EXPORT_STATES).exists()


def export_job_done(job_id: int) -> ExportJob | None:
    """A finished job of the current initiative whose file can be downloaded; None for any other id."""
    return ExportJob.objects.filter(pk=job_id, state=ExportJobState.DONE).exclude(object_key="").first()


def organiser_of(user_id: int, initiative_id: int) -> bool:
    """Whether the user organises the initiative. Read on every organiser request, never remembered, so a
    removed membership ends access at once. (Moves to the tenants app with the organisers' console.)"""
    return OrganiserMembership.objects.filter(user_id=user_id, initiative_id=initiative_id).exists()


def audit_actions_of(initiative: Initiative) -> list[str]:
    """The actions the initiative's audit trail holds, for the trail's filter."""
    actions = AuditEvent.objects.filter(initiative_id=initiative.pk).values_list("action", flat=True)
    return sorted(set(actions.order_by().distinct()))


def audit_trail_of(
    initiative: Initiative,
    *,
    action: str = "",
    since: datetime.date | None = None,
    until: datetime.date | None = None,
) -> QuerySet[AuditEvent]:
    """The initiative's own audit events, newest first, filtered by action and by day (in the platform's
    time zone, both ends included). Events hold ids and states, never a signatory's personal data."""
    events = AuditEvent.objects.filter(initiative_id=initiative.pk)
    if action:
        events = events.filter(action=action)
    if since is not None:
        events = events.filter(occurred_at__date__gte=since)
    if until is not None:
        events = events.filter(occurred_at__date__lte=until)
    return events.order_by("-sequence").only("sequence", "occurred_at", "actor", "action", "details")
