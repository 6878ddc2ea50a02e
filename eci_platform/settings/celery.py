"""Celery: Redis broker, four queues, tasks that carry ids only."""

from __future__ import annotations

from kombu import Queue

from eci_platform.settings.environment import env
from eci_platform.settings.redis import REDIS_URL
from workers.queues import QUEUES
from workers.schedule import BEAT_SCHEDULE

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "Europe/Brussels"
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = [Queue(name) for name in QUEUES]
# Tasks are named `<queue>.<what>`; the router sends them by that prefix.
CELERY_TASK_ROUTES = ("workers.routing.route_by_name_prefix",)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis redelivers an unacknowledged message after this long; longer than any single task runs.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

CELERY_BEAT_SCHEDULE = BEAT_SCHEDULE
