"""Reads of the exports app, in the current initiative's schema."""

from __future__ import annotations

import datetime

from django.db.models import Q, QuerySet
from django.utils import timezone

from exports.models import ExportBatch, ExportJob, ExportJobState

# A queued job nobody claimed within this time lost its message (a broker outage, say).
UNCLAIMED_GRACE = datetime.timedelta(minutes=2)


def export_jobs_to_resume() -> QuerySet[ExportJob]:
    """Jobs to send again: running with an expired lease (a killed worker), or queued and never claimed."""
    now = timezone.now()
    return ExportJob.objects.filter(
        Q(state=ExportJobState.RUNNING, lease_until__lt=now)
        | Q(state=ExportJobState.QUEUED, lease_until__isnull=True, requested_at__lt=now - UNCLAIMED_GRACE)
        | Q(state=ExportJobState.QUEUED, lease_until__lt=now)
    ).order_by("pk")


def export_jobs_recent(limit: int = 200) -> QuerySet[ExportJob]:
    """The initiative's export history, newest first."""
    return ExportJob.objects.select_related("batch").order_by("-requested_at", "-pk")[:limit]


def export_job(job_id: int) -> ExportJob | None:
    return ExportJob.objects.filter(pk=job_id).first()


def export_batch(batch_id: int) -> ExportBatch | None:
    return ExportBatch.objects.filter(pk=batch_id).first()
