"""The exports app's part of the destruction of REQ-18 (run by tenants.destruction): every export file
and manifest of the initiative, in whatever storage holds them, every version and leftover."""

from __future__ import annotations

import datetime

from django.conf import settings
from django.utils import timezone

from exports.models import ExportJob, ExportJobState
from exports.services import export_jobs_stop
from exports.storage import export_storage
from exports.storage.base import export_objects_prefix
from tenants.destruction import ErasureOutcome, ErasureStep, register_erasure_step
from tenants.models import DestructionScope, Initiative

STOPPED_FOR_DESTRUCTION = "Stopped: the statements are being destroyed (REQ-18)."


def export_files_destroy(initiative: Initiative) -> ErasureOutcome:
    """Stop unfinished exports, wait out the lease of any that was running (its worker could otherwise
    publish a file after the deletion), then delete the initiative's whole export folder."""
    now = timezone.now()
    lease = datetime.timedelta(seconds=settings.EXPORT_LEASE_SECONDS)
    with initiative:
        export_jobs_stop(error=STOPPED_FOR_DESTRUCTION)
        stopped_while_running = ExportJob.objects.filter(
            state=ExportJobState.FAILED,
            error=STOPPED_FOR_DESTRUCTION,
            started_at__isnull=False,
            finished_at__gt=now - lease,
        )
        if stopped_while_running.exists():
            return ErasureOutcome(
                waiting_for="an export was running when destruction began; its files are deleted once "
                "its worker's lease has run out"
            )
        removed = export_storage().delete_everything_under(export_objects_prefix(initiative.schema_name))
        ExportJob.objects.filter(files_destroyed_at__isnull=True).update(files_destroyed_at=now)
    return ErasureOutcome(files=removed)


def _export_files_measure(initiative: Initiative) -> dict[str, int]:
    with initiative:
        return {"export_jobs_with_files": ExportJob.objects.exclude(object_key="").count()}


def erasure_steps_register() -> None:
    register_erasure_step(
        ErasureStep(
            name="export_files",
            scope=DestructionScope.STATEMENTS,
            order=10,
            erase=export_files_destroy,
            measure=_export_files_measure,
            transactional=False,
        )
    )
