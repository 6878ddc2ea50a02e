"""Export an initiative's statements for the competent authorities: one Member State or all of them,
once collection has closed (closed or submitted). The jobs run on the Celery workers (queue "exports");
--wait waits until they have ended."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import CommandParser

from exports.models import UNFINISHED_EXPORT_STATES, ExportJob, ExportJobState
from exports.services import ExportRefusedError, export_request
from tenants.audit import COMMAND_LINE_ACTOR
from tenants.db import connection
from tenants.management.commands._output import JsonCommand
from tenants.models import InitiativeState
from tenants.selectors import initiative_by_slug


def job_summary(job: ExportJob) -> dict[str, Any]:
    return {
        "id": job.pk,
        "country": job.country,
        "state": job.state,
        "records_expected": job.records_expected,
        "records_written": job.records_written,
        "object_key": job.object_key,
        "manifest_key": job.manifest_key,
        "size_bytes": job.size_bytes,
        "sha256": job.sha256,
        "authority_fingerprint": job.authority_fingerprint,
        "error": job.error,
    }


class Command(JsonCommand):
    help = "Export statements per Member State, signed and encrypted for its competent authority."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--initiative", required=True, help="The initiative's slug.")
        parser.add_argument(
            "--country", required=True, help="A Member State's code (EL for Greece) or 'all'."
        )
        parser.add_argument("--wait", action="store_true", help="Wait until the workers have finished.")
        parser.add_argument("--timeout", type=float, default=3600.0, help="Seconds to wait at most.")

    def handle(self, *args: Any, **options: Any) -> None:
        initiative = initiative_by_slug(options["initiative"])
        # A destroyed one goes on to the service, whose refusal names its state or the destruction.
        if initiative is None or initiative.state == InitiativeState.PROVISIONING:
            self.refuse(options, f"No initiative with the slug {options['initiative']!r} is provisioned.")
        with initiative:
            try:
                jobs = export_request(country=options["country"], actor=COMMAND_LINE_ACTOR)
            except ExportRefusedError as error:
                self.refuse(options, str(error))
            job_ids = [job.pk for job in jobs]
            if options["wait"]:
                deadline = time.monotonic() + options["timeout"]
                while ExportJob.objects.filter(pk__in=job_ids, state__in=UNFINISHED_EXPORT_STATES).exists():
                    if time.monotonic() > deadline:
                        self.refuse(
                            options, "Timed out waiting for the workers (is a Celery worker running?)."
                        )
                    time.sleep(0.5)
            summaries = [
                job_summary(job) for job in ExportJob.objects.filter(pk__in=job_ids).order_by("country")
            ]
        connection.set_schema_to_public()
        failed = [job for job in summaries if job["state"] == ExportJobState.FAILED]
        result = {"initiative": initiative.slug, "jobs": summaries}
        lines = [
            f"{job['country']}: job {job['id']} {job['state']}"
            + (
                f", {job['records_written']} statements, {job['object_key']}"
                if job["state"] == "done"
                else ""
            )
            + (f" ({job['error']})" if job["error"] else "")
            for job in summaries
        ]
        if failed:
            self.refuse(
                options, "Some exports failed: " + "; ".join(f"{j['country']}: {j['error']}" for j in failed)
            )
        self.emit(options, result, "\n".join(lines))
