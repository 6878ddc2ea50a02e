"""The Celery worker's side of logs and metrics, wired by signals: each task's id and name in the
context of its log lines, task counters, and the metrics endpoint in the worker's main process.

prometheus-client is imported inside the handlers, once eci_platform/celery.py has settled the
multiprocess directory."""

from __future__ import annotations

import time
from typing import Any

from celery import signals

from eci_platform.logs import current_task
from eci_platform.metrics.directory import (
    metrics_port,
    multiprocess_directory_empty,
    multiprocess_directory_remove_if_made,
)

_started: dict[str, float] = {}


@signals.celeryd_init.connect
def _metrics_directory_empty(**_kwargs: Any) -> None:
    """In the worker's main process, before its pool starts."""
    multiprocess_directory_empty()


@signals.worker_ready.connect
def _metrics_server_start(**_kwargs: Any) -> None:
    """In the main process, once the pool runs (its children do not inherit the listening socket)."""
    port = metrics_port()
    if port:
        from django.conf import settings

        from eci_platform.metrics.exposition import metrics_server_start

        metrics_server_start(port, settings.METRICS_ADDRESS)


@signals.worker_shutdown.connect
def _metrics_directory_remove(**_kwargs: Any) -> None:
    """In the main process, once its pool has stopped."""
    multiprocess_directory_remove_if_made()


@signals.worker_process_shutdown.connect
def _metrics_process_exited(**_kwargs: Any) -> None:
    from eci_platform.metrics.exposition import this_process_exited

    this_process_exited()


def _task_name(sender: Any) -> str:
    return str(getattr(sender, "name", None) or "unknown")


@signals.task_prerun.connect
def _task_context_set(task_id: str | None = None, task: Any = None, **_kwargs: Any) -> None:
    current_task.set((str(task_id), _task_name(task)))
    if task_id:
        _started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _task_context_clear(
    task_id: str | None = None, task: Any = None, state: str | None = None, **_kw: Any
) -> None:
    from eci_platform.metrics.tasks import TASK_DURATION

    started = _started.pop(task_id, None) if task_id else None
    if started is not None:
        outcome = {"SUCCESS": "success", "RETRY": "retry"}.get(state or "", "failure")
        TASK_DURATION.labels(task=_task_name(task), outcome=outcome).observe(time.perf_counter() - started)
    current_task.set(None)


@signals.task_failure.connect
def _task_failure_count(sender: Any = None, **_kwargs: Any) -> None:
    from eci_platform.metrics.tasks import TASK_FAILURES

    TASK_FAILURES.labels(task=_task_name(sender)).inc()


@signals.task_retry.connect
def _task_retry_count(sender: Any = None, **_kwargs: Any) -> None:
    from eci_platform.metrics.tasks import TASK_RETRIES

    TASK_RETRIES.labels(task=_task_name(sender)).inc()
