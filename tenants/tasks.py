"""Tasks of the shared app: provisioning, the calendar, key promotion and re-encryption sweeps. Thin
interfaces: they load by id and call one service."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from tenants.account_notices import account_change_notice_send
from tenants.audit import SYSTEM_ACTOR
from tenants.db import connection
from tenants.destruction import destroy_due as destroy_due_run
from tenants.keyring.reencryption import reencryption_run
from tenants.keyring.rotation import data_key_promote
from tenants.keyring.selectors import data_keys_due_for_promotion, reencryption_jobs_to_resume
from tenants.onboarding import initiative_provision
from tenants.selectors import initiatives_awaiting_provisioning
from tenants.services import initiatives_follow_calendar
from workers.base import platform_task

PROVISIONING_GRACE = datetime.timedelta(minutes=5)
# A destruction that waits for a running export to give up its lease is tried again after this long.
DESTRUCTION_RETRY_SECONDS = 600


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


@platform_task("maintenance.destroy_due")
def destroy_due() -> dict[str, Any]:
    """REQ-18 and REQ-19: destroy what is due today. The report holds slugs, counts and key ids only."""
    report = destroy_due_run()
    if report.waiting:
        destroy_due.apply_async(countdown=DESTRUCTION_RETRY_SECONDS)
    return report.as_dict()


@platform_task("default.account_change_notice")
def send_account_change_notice(user_id: int, change: int) -> bool:
    """Tell an account holder that their password or second factor changed (tenants/account_notices.py)."""
    return account_change_notice_send(user_id, change)
