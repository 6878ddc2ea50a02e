"""The base of every platform task.

- Explicit names (`<queue>.<what>`), so renaming a module never strands queued messages.
- Retries with exponential backoff, only on transient errors (a lost database or broker connection);
  a bug or bad data fails at once instead of retrying.
- Arguments are ids only: no personal data ever travels through the broker or the result backend.
- Built on tenant-schemas-celery's task: a task sent from a tenant's context runs in that schema.
- Declared as shared tasks and sent by name (`task_send`), so that services never import a tasks module
  and this package imports no app: each app's `tasks.py` imports its services, never the other way.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from celery import current_app, shared_task
from tenant_schemas_celery.task import TenantTask

from workers.queues import QUEUES
from workers.transient import TRANSIENT_ERRORS


class TaskArgumentError(TypeError):
    """A task was sent something other than ids."""


def _is_id(value: Any) -> bool:
    """Integers and UUIDs (or their text) only: a string such as a name or an e-mail address is not."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | uuid.UUID):
        return True
    if isinstance(value, str):
        try:
            uuid.UUID(value)
        except ValueError:
            return False
        return True
    return False


def _check_ids_only(args: Any, kwargs: Any) -> None:
    for value in list(args or ()) + list((kwargs or {}).values()):
        if not _is_id(value):
            raise TaskArgumentError(
                f"Task arguments must be ids (integers or UUIDs), not {type(value).__name__}"
            )


class PlatformTask(TenantTask):
    abstract = True
    autoretry_for = TRANSIENT_ERRORS
    retry_backoff = 2
    retry_backoff_max = 300
    retry_jitter = True
    max_retries = 8
    acks_late = True

    def apply_async(self, args: Any = None, kwargs: Any = None, *rest: Any, **options: Any) -> Any:
        _check_ids_only(args, kwargs)
        return super().apply_async(args, kwargs, *rest, **options)


F = TypeVar("F", bound=Callable[..., Any])


def platform_task(name: str, **options: Any) -> Callable[[F], Any]:
    """Declare a task with an explicit name and the platform's base class."""
    queue = name.split(".", 1)[0]
    if queue not in QUEUES:
        raise ValueError(f"Task name {name!r} must start with its queue.")
    return shared_task(name=name, base=PlatformTask, bind=False, **options)


def task_send(name: str, *ids: int | uuid.UUID | str, countdown: float | None = None) -> Any:
    """Send the task registered as `name` with ids as its arguments, from the current schema (its
    tenant header goes with it). Looked up by name at run time, so the sender imports no tasks module."""
    options: dict[str, Any] = {} if countdown is None else {"countdown": countdown}
    return current_app.tasks[name].apply_async(args=ids, **options)
