"""The multiprocess directory of prometheus-client. Every process of a gunicorn or Celery server writes
its counters to files there and the exposing process sums them; prometheus-client chooses between that
and in-process values when it is first imported, so this runs before anything imports it.

No prometheus-client import here (that would decide too early)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def metrics_port() -> int:
    """METRICS_PORT as the settings read it, for the moments before Django's settings exist."""
    value = os.environ.get("METRICS_PORT", "").strip()
    try:
        return int(value) if value else 0
    except ValueError:
        raise SystemExit(f"METRICS_PORT must be a port number, not {value!r}.") from None


def multiprocess_directory_prepare() -> Path | None:
    """Where this server's processes keep their metrics: PROMETHEUS_MULTIPROC_DIR, or a new folder in
    the temporary directory when METRICS_PORT is set without it. Emptied: files of an earlier run (a
    restarted container keeps its emptyDir) would count twice. Call once, in the server's first process,
    before prometheus-client is imported."""
    if not metrics_port() and not os.environ.get(DIRECTORY_VARIABLE):
        return None
    if "prometheus_client.values" in sys.modules and not os.environ.get(DIRECTORY_VARIABLE):
        raise RuntimeError("prometheus-client was imported before its multiprocess directory was set.")
    directory = os.environ.get(DIRECTORY_VARIABLE) or tempfile.mkdtemp(prefix="eci-metrics-")
    os.environ[DIRECTORY_VARIABLE] = directory
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    return path


def multiprocess_mode() -> bool:
    return bool(os.environ.get(DIRECTORY_VARIABLE))
