"""The base of every platform task.

- Explicit names (`<queue>.<what>`), so renaming a module never strands queued messages.
- Retries with exponential backoff, only on transient errors (a lost database or broker connection);
  a bug or bad data fails at once instead of retrying.
- Arguments are ids only: no personal data ever travels through the broker or the result backend.
- Built on tenant-schemas-celery's task: a task sent from a tenant's context runs in that schema.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import kombu.exceptions
import redis.exceptions
from django.db import InterfaceError, OperationalError
from tenant_schemas_celery.task import TenantTask

from eci_platform.celery import app

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
    ConnectionError,
    TimeoutError,
)

_ID_TYPES = (int, str, uuid.UUID)
_MAX_ID_LENGTH = 64


class TaskArgumentError(TypeError):
    """A task was sent something other than ids."""


def _check_ids_only(args: Any, kwargs: Any) -> None:
    values = list(args or ()) + list((kwargs or {}).values())
    for value in values:
        if isinstance(value, bool) or not isinstance(value, _ID_TYPES):
            raise TaskArgumentError(f"Task arguments must be ids, not {type(value).__name__}.")
        if isinstance(value, str) and len(value) > _MAX_ID_LENGTH:
            raise TaskArgumentError("Task string arguments must be short ids.")


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
    if queue not in ("default", "exports", "keys", "maintenance"):
        raise ValueError(f"Task name {name!r} must start with its queue.")
    return app.task(name=name, base=PlatformTask, bind=False, **options)
