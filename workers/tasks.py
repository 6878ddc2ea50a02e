"""Celery tasks: thin interfaces that load by id and call one service."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from collection.services import counts_reconcile, counts_refresh
from exports.selectors import export_jobs_to_resume
from exports.services import export_run
from tenants.db import connection
from tenants.keyring.rotation import data_key_promote, reencryption_run
from tenants.keyring.selectors import data_keys_due_for_promotion, reencryption_jobs_to_resume
from tenants.selectors import initiatives_awaiting_provisioning, initiatives_with_schema
from tenants.services import SYSTEM_ACTOR, initiative_provision, initiatives_follow_calendar
from workers.base import platform_task

PROVISIONING_GRACE = datetime.timedelta(minutes=5)


@platform_task("maintenance.provision_initiative")
def provision_initiative(initiative_id: int) -> dict[str, Any]:
    initiative = initiative_provision(initiative_id)
    # A session that created many schemas keeps their catalog entries and slows down; start afresh.
    if not connection.in_atomic_block:
        connection.close()
    return {"initiative_id": initiative_id, "state": initiative.state if initiative else "gone"}


@platform_task("maintenance.reconcile_provisioning")
def reconcile_provisioning() -> list[int]:
    """The database is the source of truth: re-send provisioning that has not happened in time.
    Provisioning is idempotent, so a duplicate message does nothing."""
    waiting = list(
        initiatives_awaiting_provisioning(older_than=PROVISIONING_GRACE).values_list("pk", flat=True)
    )
    for initiative_id in waiting:
        provision_initiative.delay(initiative_id)
    return waiting


@platform_task("maintenance.follow_calendar")
def follow_calendar() -> dict[str, int]:
    return initiatives_follow_calendar()


@platform_task("default.refresh_counts")
def refresh_counts() -> dict[str, Any]:
    """Runs in the schema of the initiative it was sent from (tenant-schemas-celery headers)."""
    return counts_refresh()


@platform_task("default.refresh_all_counts")
def refresh_all_counts() -> int:
    """Fan out one `refresh_counts` per initiative whose site answers, each sent from its schema: a
    submitted or withdrawn initiative still shows its count, a ready one publishes zeros."""
    return _send_from_each_initiative(refresh_counts)


@platform_task("default.reconcile_counts")
def reconcile_counts() -> dict[str, Any]:
    """Runs in the schema of the initiative it was sent from, like `refresh_counts`."""
    return dataclasses.asdict(counts_reconcile())


@platform_task("default.reconcile_all_counts")
def reconcile_all_counts() -> int:
    """Nightly: fan out one `reconcile_counts` per initiative, as `refresh_all_counts` does."""
    return _send_from_each_initiative(reconcile_counts)


def _send_from_each_initiative(task: Any) -> int:
    """Send `task`, without arguments, from the schema of every initiative whose site answers (one
    task each, so one initiative's failure or retries never hold up the others)."""
    sent = 0
    for initiative in initiatives_with_schema():
        with initiative:
            task.delay()
        sent += 1
    connection.set_schema_to_public()
    return sent


@platform_task("keys.promote_data_key")
def promote_data_key(data_key_id: int) -> dict[str, Any]:
    key = data_key_promote(data_key_id, actor=SYSTEM_ACTOR)
    return {"data_key_id": data_key_id, "state": key.state if key else "gone"}


@platform_task("keys.reencrypt")
def reencrypt(job_id: int) -> dict[str, Any]:
    """Run or resume a sweep; until it may start (or while records written late remain) it sends
    itself again with a delay. A second delivery finds the lease taken and does nothing."""
    outcome = reencryption_run(job_id)
    if outcome.retry_in_seconds is not None:
        reencrypt.apply_async(args=[job_id], countdown=outcome.retry_in_seconds)
    return dataclasses.asdict(outcome)


@platform_task("keys.reconcile")
def reconcile_keys() -> dict[str, list[int]]:
    """The database is the source of truth: promote pending keys whose time has come and re-send sweeps
    whose lease expired (a killed worker) or that never started (a lost message)."""
    promoted = [key.pk for key in data_keys_due_for_promotion()]
    for data_key_id in promoted:
        promote_data_key.delay(data_key_id)
    resent = list(reencryption_jobs_to_resume().values_list("pk", flat=True))
    for job_id in resent:
        reencrypt.delay(job_id)
    return {"promoted": promoted, "resent": resent}


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
