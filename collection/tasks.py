"""Tasks of the collection app: publishing and reconciling the counts. Thin interfaces."""

from __future__ import annotations

import dataclasses
from typing import Any

from collection.services import counts_reconcile, counts_refresh
from tenants.db import connection
from tenants.selectors import initiatives_with_schema
from workers.base import platform_task


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
