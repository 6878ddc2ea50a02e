"""Links to initiative sites, for people (commands, console, e-mails)."""

from __future__ import annotations

from django.conf import settings

from tenants.models import Initiative


def initiative_site_url(initiative: Initiative) -> str:
    domain = initiative.get_primary_domain()
    host = domain.domain if domain else f"{initiative.slug}.{settings.PLATFORM_DOMAIN}"
    port = f":{settings.PUBLIC_URL_PORT}" if settings.PUBLIC_URL_PORT else ""
    return f"{settings.PUBLIC_URL_SCHEME}://{host}{port}/"


def platform_url(path: str = "/") -> str:
    port = f":{settings.PUBLIC_URL_PORT}" if settings.PUBLIC_URL_PORT else ""
    return f"{settings.PUBLIC_URL_SCHEME}://{settings.PLATFORM_DOMAIN}{port}{path}"
