"""The first middleware: gives the request its id (a sane incoming X-Request-ID, else a new one, returned
in the response's header), makes it the context of every log line written while it is served, times it
for the latency histogram and writes one access line: method, view name, status and duration, never the
path or the query (they carry tokens and ids) nor the client's address."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

from eci_platform.health import LIVEZ_PATH, READYZ_PATH
from eci_platform.logs import current_request, current_request_id, request_label
from eci_platform.metrics.http import REQUEST_DURATION

logger = logging.getLogger("eci_platform.requests")

REQUEST_ID_HEADER = "X-Request-ID"
# What a proxy's id looks like (a UUID, nginx's 32 hex digits, ...): anything else is replaced, so a
# client cannot write arbitrary text into the logs through it.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{7,63}")
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
PROBE_PATHS = {LIVEZ_PATH: "livez", READYZ_PATH: "readyz"}


# The id eci_platform.signing_lane gave a request it then left to Django, and when it started (server
# environ keys).
LANE_REQUEST_ID = "eci.request_id"
LANE_STARTED = "eci.request_started"


def request_id_for(request: HttpRequest) -> str:
    given = request.META.get(LANE_REQUEST_ID)
    if given:
        return str(given)
    incoming = request.META.get("HTTP_X_REQUEST_ID", "")
    if SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def _view_label(request: HttpRequest) -> str:
    probe = PROBE_PATHS.get(request.path_info.rstrip("/"))
    if probe is not None:
        return probe
    if getattr(request, "resolver_match", None) is None and request.path_info.startswith(settings.STATIC_URL):
        return "static"
    return request_label(request)


def request_observation_begin(request: HttpRequest) -> tuple[float, str]:
    """When the request started and its id; from now on every log line carries the id. Cleared when the
    response is closed (request_finished), not on the way out: Django writes its `django.request` line
    for an error after the middleware returned."""
    started = request.META.get(LANE_STARTED) or time.perf_counter()
    request_id = request_id_for(request)
    current_request.set(request)
    current_request_id.set(request_id)
    return started, request_id


def request_observation_end(
    request: HttpRequest, response: HttpResponseBase, started: float, request_id: str, view: str = ""
) -> None:
    """The id in the response's header, the latency in the histogram and the access line."""
    response[REQUEST_ID_HEADER] = request_id
    duration = time.perf_counter() - started
    view = view or _view_label(request)
    method = request.method if request.method in KNOWN_METHODS else "other"
    status = str(response.status_code)
    REQUEST_DURATION.labels(view=view, method=method, status=status).observe(duration)
    if view not in PROBE_PATHS.values():  # the probes would drown the rest
        logger.info(
            "%s %s %s",
            method,
            view,
            response.status_code,
            extra={
                "method": method,
                "view": view,
                "status": response.status_code,
                "duration_ms": round(duration * 1000, 1),
            },
        )


class RequestObservationMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started, request_id = request_observation_begin(request)
        response = self.get_response(request)
        request_observation_end(request, response, started, request_id)
        return response


@receiver(request_finished)
def _request_context_clear(**_kwargs: Any) -> None:
    current_request.set(None)
    current_request_id.set(None)
