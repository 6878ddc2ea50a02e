"""Host routing: the platform domain gets the operator console, `<slug>.<domain>` an initiative's site
on that initiative's schema, anything else the 404 page. Replaces django-tenants' main middleware so
that an unknown or not-yet-provisioned host is a plain 404, never a stack trace."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound
from django.template.loader import render_to_string
from django.utils import translation

from eci_platform.csp import security_headers_set
from tenants.db import connection, schema_use
from tenants.selectors import initiative_for_host


def unknown_host_response(request: HttpRequest) -> HttpResponse:
    # Rendered before the locale middleware runs: choose the language here, from the browser's.
    language = translation.get_language_from_request(request)
    with translation.override(language):
        body = render_to_string("unknown_host.html", {"language": language}, request=None)
    response = HttpResponseNotFound(body, headers={"Content-Language": language})
    # This answer leaves before the security and CSP middleware run (they come after host routing, which
    # they need): it carries their headers itself.
    security_headers_set(response)
    return response


class InitiativeHostMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Every request sets the schema it runs on before anything else touches the database; a request
        # on the same schema as the one before keeps its search_path (see tenants.db.schema_use).
        try:
            hostname = request.get_host().rsplit(":", 1)[0].lower().rstrip(".")
        except DisallowedHost:
            schema_use(None)
            return unknown_host_response(request)

        if hostname == settings.PLATFORM_DOMAIN:
            schema_use(None)
            request.urlconf = settings.PUBLIC_SCHEMA_URLCONF  # type: ignore[attr-defined]
            request.tenant = connection.tenant  # type: ignore[attr-defined]  # the public schema (django-tenants templates read it)
            return self.get_response(request)

        initiative = initiative_for_host(hostname)
        if initiative is None:
            schema_use(None)
            return unknown_host_response(request)
        initiative.domain_url = hostname  # type: ignore[assignment]
        request.tenant = initiative  # type: ignore[attr-defined]
        request.urlconf = settings.ROOT_URLCONF  # type: ignore[attr-defined]
        schema_use(initiative)
        return self.get_response(request)
