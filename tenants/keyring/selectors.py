"""Reads on keys and key jobs."""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from tenants.models import DataKey, DataKeyState, Initiative, ReencryptionJob, ReencryptionJobState


def data_keys_due_for_promotion() -> QuerySet[DataKey]:
    due = timezone.now() - datetime.timedelta(seconds=settings.KEY_PROPAGATION_SECONDS)
    return DataKey.objects.filter(state=DataKeyState.PENDING, created_at__lte=due)


def reencryption_jobs_to_resume() -> QuerySet[ReencryptionJob]:
    now = timezone.now()
    return ReencryptionJob.objects.filter(
        Q(state=ReencryptionJobState.QUEUED, not_before__lte=now)
        | Q(state=ReencryptionJobState.RUNNING, lease_until__lt=now)
        | Q(state=ReencryptionJobState.RUNNING, lease_until__isnull=True)
    )


def initiative_keys(initiative: Initiative) -> list[dict[str, object]]:
    """The key versions of an initiative, for people: ids, states and times, never material."""
    return [
        {
            "purpose": key.purpose,
            "version": key.version,
            "state": key.state,
            "kek_id": key.kek_id,
            "created_at": key.created_at,
            "primary_since": key.primary_since,
            "destroyed_at": key.destroyed_at,
        }
        for key in DataKey.objects.filter(initiative=initiative).order_by("purpose", "version")
    ]
