"""Log lines: one JSON object per line in production (python-json-logger), plain text in development.

Every line written during a request carries its request id and the initiative's slug; every line written
by a task carries the task's id and name (and the slug of the initiative whose schema it runs on). Only
the fields named in `JSON_FIELDS` leave the process: the extra attributes other libraries attach to a
record (Django puts the whole request on its `django.request` lines) never reach the output, and the
request's path is replaced by its view's name, because paths carry tokens (invitations, password resets).

This module imports no Django model and reads no settings, so gunicorn's master can use it before
Django is set up.
"""

from __future__ import annotations

import contextvars
import logging
import logging.config
from typing import Any

from pythonjsonlogger.json import JsonFormatter

# What a line may say: fixed fields, the context below, the access line's fields (request_observation).
JSON_FIELDS = (
    "time",
    "level",
    "logger",
    "message",
    "request_id",
    "initiative",
    "task_id",
    "task_name",
    "method",
    "view",
    "status",
    "duration_ms",
    "exc_info",
    "stack_info",
)
CONTEXT_FIELDS = ("request_id", "initiative", "task_id", "task_name")

# The request being served (set by eci_platform.request_observation) and the task being run (set by
# eci_platform.worker_observation): contextvars, so a thread or a task sees only its own.
current_request: contextvars.ContextVar[Any] = contextvars.ContextVar("current_request", default=None)
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
current_task: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("task", default=None)


def request_label(request: Any) -> str:
    """What a request is called in logs and metrics: its view's name, never its path (no tokens, no
    identifiers, a bounded set)."""
    match = getattr(request, "resolver_match", None)
    # An unnamed pattern's view_name is its view's dotted path: bounded too.
    return str(match.view_name) if match is not None else "unrouted"


def _initiative_slug_of_request(request: Any) -> str | None:
    tenant = getattr(request, "tenant", None)
    # The platform domain's requests carry the public schema's stand-in, which has no slug.
    slug = getattr(tenant, "slug", None)
    return slug if isinstance(slug, str) and slug else None


def _initiative_slug_of_connection() -> str | None:
    """The initiative whose schema the task's connection is on (tenant-schemas-celery switches it)."""
    from django.db import connection

    tenant = getattr(connection, "tenant", None)
    slug = getattr(tenant, "slug", None)
    if getattr(connection, "schema_name", "public") == "public":
        return None
    return slug if isinstance(slug, str) and slug else None


class LogContextFilter(logging.Filter):
    """Adds the request's or the task's context to every record a handler writes."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = current_request.get()
        task = current_task.get()
        record.request_id = current_request_id.get()
        record.initiative = None
        record.task_id = record.task_name = None
        if request is not None:
            record.initiative = _initiative_slug_of_request(request)
            _path_replace(record, request)
        elif task is not None:
            record.task_id, record.task_name = task
            try:
                record.initiative = _initiative_slug_of_connection()
            except Exception:  # a log line must never fail for want of its context
                record.initiative = None
        return True


def _path_replace(record: logging.LogRecord, request: Any) -> None:
    """Django's `django.request` and `django.security.*` lines name the request's path; say its view's
    name instead (a path may hold an invitation's or a password reset's token)."""
    if not isinstance(record.args, tuple) or not record.args:
        return
    paths = {getattr(request, "path", None), getattr(request, "path_info", None)}
    paths.discard(None)
    if not paths:
        return
    record.args = tuple(request_label(request) if arg in paths else arg for arg in record.args)


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line with the fields of JSON_FIELDS only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("timestamp", "time")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        super().__init__("%(levelname)s %(name)s %(message)s", *args, **kwargs)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in log_data.items() if key in JSON_FIELDS and value is not None}


class PlainFormatter(logging.Formatter):
    """Development's lines: readable, with the same context when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(
            f"{name}={value}" for name in CONTEXT_FIELDS if (value := getattr(record, name, None)) is not None
        )
        return f"{line} [{context}]" if context else line


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """Django's LOGGING (and gunicorn's logconfig_dict): every line through one handler on stderr."""
    formatters: dict[str, Any] = {
        "json": {"()": JsonLineFormatter},
        "plain": {"()": PlainFormatter, "format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": LogContextFilter}},
        "formatters": formatters,
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Django's own console handler (DEBUG only) would print its lines a second time, unformatted.
            "django": {"handlers": [], "propagate": True, "level": level},
            "django.db.backends": {"level": "WARNING"},
            # gunicorn's own lines go through the same handler (see eci_platform.gunicorn_config); its
            # access lines never: they carry the full URL (tokens) and the client's address. The
            # platform writes its own (eci_platform.request_observation).
            "gunicorn.error": {"handlers": [], "propagate": True},
            "gunicorn.access": {"handlers": [], "propagate": False, "level": "CRITICAL"},
        },
    }


def logging_configure(config: dict[str, Any]) -> None:
    """Django's LOGGING_CONFIG: the dictionary, and Python's warnings as log lines (a library's warning
    printed on stderr would be the one line of the output that is not JSON)."""
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
    # No line says where in the source it was written, nor which thread or process wrote it: the
    # logging HOWTO's "Optimization" switches, which spare each record a walk up the stack and two
    # lookups (about a tenth of a log line's cost, measured on the signing path).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
