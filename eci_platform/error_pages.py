"""Error pages of an initiative's site (and of the platform domain), in the visitor's language.

Django's own pages are English with lang="en". An initiative's public pages run without the locale
middleware (eci_platform/areas.py), so each handler chooses the language as the pages do: ?lang=, else
the browser's, else the initiative's registered language. No error page is cached: it must not stand in
for the real page once the cause is gone.

A request that fails because PostgreSQL or Redis cannot be reached (a restart, a failover) is answered
503 with Retry-After, not 500: nothing is wrong with the request, and it will work again in moments
(docs/deploying.md, "When PostgreSQL or Redis is away")."""

from __future__ import annotations

import logging
import sys

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.cache import add_never_cache_headers
from kombu.exceptions import OperationalError as BrokerError
from psycopg import InterfaceError as PsycopgInterfaceError
from psycopg import OperationalError as PsycopgOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from collection.views import chosen_language
from eci_platform.csp import security_headers_set
from tenants.models import Initiative

logger = logging.getLogger(__name__)

# When even the 500 template cannot be rendered (a broken template, catalogue or static storage).
PLAIN_SERVER_ERROR = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Server error</title></head>'
    "<body><main><h1>Something went wrong</h1><p>An error on this site stopped your request. "
    "Please try again in a few minutes.</p></main></body></html>"
)

# A service the request needs did not answer: psycopg's connection errors (a server that is down,
# restarting or ended the session), as Django wraps them and as raw psycopg raises them; redis-py's, which
# Django's cache lets through; and Celery's broker (Redis) refusing a task.
SERVICE_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    PsycopgOperationalError,
    PsycopgInterfaceError,
    RedisConnectionError,
    RedisTimeoutError,
    BrokerError,
)
# A restart of PostgreSQL or Redis takes seconds; a client may try again after this many.
RETRY_AFTER_SECONDS = 5


def service_unavailable(error: BaseException | None) -> BaseException | None:
    """The error of a service that did not answer, if it is `error` or an error `error` was raised from
    or while handling."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, SERVICE_UNAVAILABLE_ERRORS):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def visitor_language(request: HttpRequest) -> str:
    """The language of the page that failed: the locale middleware's where it ran (organisers' pages,
    operator console), else the public pages' choice."""
    if hasattr(request, "LANGUAGE_CODE"):
        return str(request.LANGUAGE_CODE)
    tenant = getattr(request, "tenant", None)
    registered = tenant.registered_language if isinstance(tenant, Initiative) else settings.LANGUAGE_CODE
    try:
        return chosen_language(request, registered)
    except SuspiciousOperation:
        # The query string itself may be what was refused (too many fields): the browser's choice then.
        header_only = HttpRequest()
        header_only.META = {"HTTP_ACCEPT_LANGUAGE": request.META.get("HTTP_ACCEPT_LANGUAGE", "")}
        return chosen_language(header_only, registered)


def _answer(body: str, status: int, language: str) -> HttpResponse:
    response = HttpResponse(body, status=status, headers={"Content-Language": language})
    add_never_cache_headers(response)
    # A 500 raised in host routing leaves before the header middleware runs.
    security_headers_set(response)
    return response


def _page(request: HttpRequest, template: str, status: int) -> HttpResponse:
    language = visitor_language(request)
    tenant = getattr(request, "tenant", None)
    context: dict[str, object] = {"language": language, "operator_name": settings.OPERATOR_NAME}
    if isinstance(tenant, Initiative):
        # The initiative's row is already in memory (host routing loaded it): no query here.
        context.update(initiative=tenant, title=tenant.text("title", language))
    with translation.override(language):
        # No request: context processors would reach for the session or the user, which may be broken.
        body = render_to_string(template, context)
    return _answer(body, status, language)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _page(request, "errors/400.html", 400)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _page(request, "errors/403.html", 403)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _page(request, "errors/404.html", 404)


def server_error(request: HttpRequest) -> HttpResponse:
    """Touches no database (it may be what failed) and cannot fail in turn: a plain page at worst. Django
    calls it while handling the exception: a service that did not answer makes it a 503."""
    unavailable = service_unavailable(sys.exc_info()[1])
    template, status = ("errors/503.html", 503) if unavailable is not None else ("errors/500.html", 500)
    body: str
    try:
        language = visitor_language(request)
        with translation.override(language):
            body = render_to_string(template, {"language": language})
    except Exception as error:  # the last resort: never a second 500
        logger.error("the server error page could not be rendered: %s", type(error).__name__)
        language, body = "en", PLAIN_SERVER_ERROR
    response = _answer(body, status, language)
    if unavailable is not None:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        # One line per request instead of Django's traceback: an outage under load would write thousands
        # of identical tracebacks. Only the first line of the driver's message: its details could quote data.
        logger.warning(
            "service unavailable: %s %s: %s: %s",
            request.method,
            request.path,
            type(unavailable).__name__,
            (str(unavailable).strip().splitlines() or [""])[0],
        )
        response._has_been_logged = True  # type: ignore[attr-defined]  # read by django.utils.log.log_response
    return response


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a citizen whose browser refused the cookie, or who sent a form kept open for
    long, meets it. The reason is for developers (Django logs it); the page says what to do."""
    return _page(request, "errors/csrf_failure.html", 403)
