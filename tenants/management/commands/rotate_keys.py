"""Rotate an initiative's keys: a new KEK at once, new data keys after the propagation time and, with
--reencrypt, the sweeps that move every record to them. --wait waits for all of it."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from tenants.audit import COMMAND_LINE_ACTOR
from tenants.keyring.rotation import RotationError, initiative_keys_rotate
from tenants.keyring.selectors import initiative_keys
from tenants.management.commands._output import JsonCommand
from tenants.models import DataKey, DataKeyState, InitiativeState, ReencryptionJob, ReencryptionJobState
from tenants.selectors import initiative_by_slug

FINAL_JOB_STATES = (ReencryptionJobState.FINISHED, ReencryptionJobState.FAILED)


class Command(JsonCommand):
    help = "Rotate an initiative's keys (KEK rewrap and new data keys; --reencrypt sweeps the records)."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--initiative", required=True, help="The initiative's slug.")
        parser.add_argument(
            "--reencrypt", action="store_true", help="Also move every record to the new keys."
        )
        parser.add_argument("--wait", action="store_true", help="Wait until the workers have finished.")
        parser.add_argument("--timeout", type=float, default=3600.0, help="Seconds to wait at most.")

    def handle(self, *args: Any, **options: Any) -> None:
        initiative = initiative_by_slug(options["initiative"])
        if initiative is None:
            raise CommandError(f"No initiative with the slug {options['initiative']!r}.")
        if not initiative.is_visible or initiative.state == InitiativeState.DESTROYED:
            raise CommandError(f"The initiative is {initiative.state}: its keys cannot be rotated.")
        try:
            started = initiative_keys_rotate(
                initiative, actor=COMMAND_LINE_ACTOR, reencrypt=options["reencrypt"]
            )
        except RotationError as error:
            raise CommandError(str(error)) from None

        result: dict[str, Any] = {
            "initiative": initiative.slug,
            "kek_id": started.kek_id,
            "new_versions": started.announced,
            "jobs": started.jobs,
        }
        if options["wait"]:
            deadline = time.monotonic() + options["timeout"]
            while not self._done(initiative.pk, started.announced, started.jobs):
                if time.monotonic() > deadline:
                    raise CommandError("Timed out waiting for the workers (is a Celery worker running?).")
                time.sleep(min(1.0, max(0.05, settings.KEY_PROPAGATION_SECONDS / 10)))
            result["jobs"] = [
                {
                    "id": job.pk,
                    "purpose": job.purpose,
                    "state": job.state,
                    "records_moved": job.records_moved,
                    "versions_destroyed": job.versions_destroyed,
                    "error": job.error,
                }
                for job in ReencryptionJob.objects.filter(pk__in=started.jobs).order_by("pk")
            ]
        result["keys"] = initiative_keys(initiative)
        human = f"Rotated the keys of {initiative.slug}: new versions {started.announced}"
        if started.jobs:
            human += f", re-encryption jobs {started.jobs}"
        self.emit(options, result, human + ".")

    @staticmethod
    def _done(initiative_id: int, announced: dict[str, int], jobs: list[int]) -> bool:
        promoted = all(
            DataKey.objects.filter(initiative_id=initiative_id, purpose=purpose, version=version)
            .exclude(state=DataKeyState.PENDING)
            .exists()
            for purpose, version in announced.items()
        )
        unfinished = ReencryptionJob.objects.filter(pk__in=jobs).exclude(state__in=FINAL_JOB_STATES).exists()
        return promoted and not unfinished
