"""The Celery app. Built on tenant-schemas-celery: a task sent while the connection is on a tenant's
schema carries that schema in its headers and runs in it on the worker."""

from __future__ import annotations

import os

from tenant_schemas_celery.app import CeleryApp

# Its signal handlers: each task's log context and counters, the worker's metrics endpoint (METRICS_PORT).
from eci_platform import worker_observation  # noqa: F401
from eci_platform.metrics.directory import multiprocess_directory_ensure

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eci_platform.settings")
# Before any app imports prometheus-client: every process of the platform imports this module first.
multiprocess_directory_ensure()

app = CeleryApp("eci_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each app keeps its tasks in its own tasks.py; workers/ holds only the plumbing.
app.autodiscover_tasks(["tenants", "collection", "exports"])
