"""The multiprocess directory of prometheus-client. Every process of a gunicorn or Celery server writes
its counters to files there and the exposing process sums them; prometheus-client chooses between that
and in-process values when it is first imported, so the directory is settled before anything imports it
(eci_platform/celery.py, imported first by every process of the platform).

No prometheus-client import here (that would decide too early)."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# The folder this process made itself (no PROMETHEUS_MULTIPROC_DIR given), removed when the server stops.
_made_here: Path | None = None


def metrics_port() -> int:
    """METRICS_PORT as the settings read it, for the moments before Django's settings exist."""
    value = os.environ.get("METRICS_PORT", "").strip()
    try:
        return int(value) if value else 0
    except ValueError:
        raise SystemExit(f"METRICS_PORT must be a port number, not {value!r}.") from None


def multiprocess_directory_ensure() -> Path | None:
    """PROMETHEUS_MULTIPROC_DIR, created if missing; when METRICS_PORT is set without it, a new folder
    in the temporary directory, which the server's processes (forked from this one) inherit. A process
    with nowhere to write (a read-only root without /tmp, say a one-off command) keeps its metrics in
    memory: it serves none anyway."""
    directory = os.environ.get(DIRECTORY_VARIABLE, "")
    if not directory:
        if not metrics_port():
            return None
        if "prometheus_client.values" in sys.modules:
            raise RuntimeError("prometheus-client was imported before its multiprocess directory was set.")
        try:
            directory = tempfile.mkdtemp(prefix="eci-metrics-")
        except OSError as error:
            logger.warning(
                "metrics: no multiprocess directory (%s); set %s", error.strerror, DIRECTORY_VARIABLE
            )
            return None
        global _made_here
        _made_here = Path(directory)
        os.environ[DIRECTORY_VARIABLE] = directory
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    return path


def multiprocess_directory_empty() -> None:
    """Remove the files of an earlier run (a restarted container keeps its emptyDir): they would count
    twice. Only the server's first process calls this, before it starts its workers."""
    path = multiprocess_directory_ensure()
    if path is not None:
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)


def multiprocess_directory_remove_if_made() -> None:
    """When the server stops: remove the folder it made for itself (never one it was given)."""
    if _made_here is not None:
        shutil.rmtree(_made_here, ignore_errors=True)


def multiprocess_mode() -> bool:
    return bool(os.environ.get(DIRECTORY_VARIABLE))
