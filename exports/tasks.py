"""Tasks of the exports app: running export jobs and re-sending the stranded ones. Thin interfaces."""

from __future__ import annotations

import dataclasses
from typing import Any

from exports.password_reset import password_reset_mail_send
from exports.selectors import export_jobs_to_resume
from exports.services import export_run
from tenants.db import connection
from tenants.selectors import initiatives_with_schema
from workers.base import platform_task


@platform_task("exports.run")
def run_export(job_id: int) -> dict[str, Any]:
    """Run one export job of the current initiative. A second delivery finds the lease taken (or the job
    ended) and does nothing."""
    return dataclasses.asdict(export_run(job_id))


@platform_task("exports.reconcile")
def reconcile_exports() -> dict[str, list[int]]:
    """The database is the source of truth: re-send, in each initiative's schema, the export jobs whose
    lease expired (a killed worker) or that were never picked up (a lost message)."""
    resent: dict[str, list[int]] = {}
    for initiative in initiatives_with_schema():
        with initiative:
            job_ids = list(export_jobs_to_resume().values_list("pk", flat=True))
            for job_id in job_ids:
                run_export.delay(job_id)
        if job_ids:
            resent[initiative.slug] = job_ids
    connection.set_schema_to_public()
    return resent


@platform_task("default.password_reset_mail")
def send_password_reset_mail(initiative_id: int, user_id: int) -> bool:
    """Send an organiser's password-reset link (exports/password_reset.py)."""
    return password_reset_mail_send(initiative_id, user_id)
