"""The beat schedule: the reconcilers that make the database, not the broker, the source of truth, and
the periodic work. Tasks are named here, not imported: this module imports no app."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "reconcile-provisioning": {"task": "maintenance.reconcile_provisioning", "schedule": 300.0},
    "reconcile-keys": {"task": "keys.reconcile", "schedule": 30.0},
    "follow-calendar": {"task": "maintenance.follow_calendar", "schedule": 3600.0},
    "refresh-all-counts": {"task": "default.refresh_all_counts", "schedule": 60.0},
    # Nightly, when few sign: compare the published counts with the table and correct drift.
    "reconcile-all-counts": {"task": "default.reconcile_all_counts", "schedule": crontab(hour=3, minute=15)},
    "reconcile-exports": {"task": "exports.reconcile", "schedule": 30.0},
    # REQ-18/REQ-19: daily; a run that had to wait (a running export) sends itself again sooner.
    "destroy-due": {"task": "maintenance.destroy_due", "schedule": crontab(hour=2, minute=30)},
}
