"""gunicorn's configuration for the platform: `gunicorn -c python:eci_platform.gunicorn_config
eci_platform.wsgi`. Command-line options still apply on top (--bind, --workers, ...).

- Metrics (METRICS_PORT): the master empties the multiprocess directory when it starts (importing
  eci_platform settled which directory, before anything imported prometheus-client), serves the endpoint
  once it is ready (adding up its workers' files) and drops a dead worker's live gauges.
- Logs: gunicorn's own lines go through the platform's handler, JSON or plain as LOG_FORMAT says; its
  access log stays off (the platform writes its own access line, without paths: see
  eci_platform/request_observation.py).
"""

from __future__ import annotations

import os
from typing import Any

from eci_platform.metrics.directory import (
    metrics_port,
    multiprocess_directory_empty,
    multiprocess_directory_remove_if_made,
)

# Read through the settings' own reader, so a bad value stops the master with the settings' message.
from eci_platform.settings.observability import LOGGING

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eci_platform.settings")
logconfig_dict = LOGGING
accesslog = None
# gunicorn's control socket (gunicornc) is not used: it would want a writable home directory.
control_socket_disable = True


def on_starting(server: Any) -> None:
    multiprocess_directory_empty()


def when_ready(server: Any) -> None:
    port = metrics_port()
    if not port:
        return
    import django
    from django.conf import settings

    # The endpoint reads the platform's state from the public schema at scrape time.
    django.setup()
    from eci_platform.celery import app
    from eci_platform.metrics.exposition import metrics_server_start

    metrics_server_start(port, settings.METRICS_ADDRESS, platform_state_of=app)


def child_exit(server: Any, worker: Any) -> None:
    from eci_platform.metrics.exposition import process_exited

    process_exited(worker.pid)


def on_exit(server: Any) -> None:
    multiprocess_directory_remove_if_made()
