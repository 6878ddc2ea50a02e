"""Task routing: a task named `<queue>.<what>` goes to that queue."""

from __future__ import annotations

from typing import Any

from workers.queues import QUEUES


def route_by_name_prefix(
    name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any
) -> dict[str, str]:
    prefix = name.split(".", 1)[0]
    return {"queue": prefix if prefix in QUEUES else "default"}
