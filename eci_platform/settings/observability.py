"""Logs and metrics (eci_platform/logs.py, eci_platform/metrics/): what the operator's collectors read."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from eci_platform.logs import logging_config
from eci_platform.settings.environment import DEBUG, env, optional

# json: one JSON object per line (the default with DEBUG off); plain: lines for a person (development).
LOG_FORMAT = optional("LOG_FORMAT", "plain" if DEBUG else "json").strip().lower()
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or plain, not {LOG_FORMAT!r}.")
LOG_LEVEL = optional("LOG_LEVEL", "INFO").strip().upper()
LOGGING = logging_config(LOG_FORMAT, LOG_LEVEL)
LOGGING_CONFIG = "eci_platform.logs.logging_configure"

# The Prometheus endpoint of gunicorn's master and of each Celery worker, on a port of its own that no
# public Service or Ingress routes to (0: none). See eci_platform/metrics/.
METRICS_PORT = env.int("METRICS_PORT", default=0)
METRICS_ADDRESS = optional("METRICS_ADDRESS", "0.0.0.0")  # noqa: S104  # scraped from other pods
