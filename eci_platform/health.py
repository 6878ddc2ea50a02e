"""Liveness and readiness probes. They answer before host routing, so any Host header works."""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from tenants.db import connection

logger = logging.getLogger(__name__)

LIVEZ_PATH = "/livez"
READYZ_PATH = "/readyz"


def _check_postgres() -> str | None:
    try:
        connection.set_schema_to_public()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # a probe reports any failure; it must never raise
        logger.warning("readiness: PostgreSQL check failed: %s", type(error).__name__)
        return type(error).__name__
    return None


def _check_redis() -> str | None:
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as error:  # a probe reports any failure; it must never raise
        logger.warning("readiness: Redis check failed: %s", type(error).__name__)
        return type(error).__name__
    return None


def readiness() -> tuple[bool, dict[str, str]]:
    checks = {"postgres": _check_postgres(), "redis": _check_redis()}
    report = {name: ("ok" if failure is None else f"failed: {failure}") for name, failure in checks.items()}
    return all(failure is None for failure in checks.values()), report


class HealthCheckMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info.rstrip("/")
        if path == LIVEZ_PATH:
            return JsonResponse({"status": "ok"})
        if path == READYZ_PATH:
            ready, report = readiness()
            return JsonResponse(
                {"status": "ok" if ready else "unavailable", "checks": report}, status=200 if ready else 503
            )
        return self.get_response(request)
