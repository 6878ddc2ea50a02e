"""Celery task counters, by task name (the explicit `<queue>.<what>` names: a bounded set)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

TASK_FAILURES = Counter(
    "eci_task_failures_total", "Tasks that ended in an exception, by task name.", ["task"]
)
TASK_RETRIES = Counter("eci_task_retries_total", "Tasks sent again for a retry, by task name.", ["task"])
TASK_DURATION = Histogram(
    "eci_task_duration_seconds",
    "Time a task ran in the worker, by task name and how it ended (success, failure, retry).",
    ["task", "outcome"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0),
)
