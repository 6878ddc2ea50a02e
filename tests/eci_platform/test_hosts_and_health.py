"""Host routing, the unknown-host 404 and the health endpoints."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import OperationalError
from django.test import Client, override_settings

from tenants.models import Initiative, InitiativeState
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "host", [f"nobody.{'{domain}'}", "evil.example", "a.b.{domain}", "[::1]", "bad host"]
)
def test_unknown_or_foreign_host_gets_the_404_page_without_a_trace(host: str) -> None:
    response = Client(HTTP_HOST=host.format(domain=settings.PLATFORM_DOMAIN)).get("/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "no citizens' initiative at this address" in body
    assert "Traceback" not in body and "DisallowedHost" not in body
    # It leaves before the header middleware runs, and carries their headers all the same.
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin" and response["X-Frame-Options"] == "DENY"


@override_settings(DEBUG=True)
def test_unknown_host_is_a_404_page_even_in_debug() -> None:
    response = Client(HTTP_HOST=f"missing.{settings.PLATFORM_DOMAIN}").get("/")
    assert response.status_code == 404
    assert "Traceback" not in response.content.decode()


def test_a_provisioning_initiative_is_not_served(alpha: Initiative) -> None:
    Initiative.objects.filter(pk=alpha.pk).update(state=InitiativeState.PROVISIONING)
    assert client_for(alpha).get("/").status_code == 404


def test_a_destroyed_initiative_shows_its_register_data_and_takes_no_statement(alpha: Initiative) -> None:
    """What stays after destruction (REQ-18) is public: the register data; signing is over."""
    Initiative.objects.filter(pk=alpha.pk).update(state=InitiativeState.DESTROYED)
    client = client_for(alpha)
    assert client.get("/").status_code == 200
    assert client.get("/sign/FR/").status_code == 410


def test_platform_domain_serves_the_operator_console(platform_client: Client) -> None:
    response = platform_client.get("/")
    assert response.status_code == 302 and response["Location"] == "/operator/"
    assert platform_client.get("/operator/login/").status_code == 200


def test_initiative_host_does_not_serve_the_operator_console(alpha: Initiative) -> None:
    assert client_for(alpha).get("/operator/login/").status_code == 404


@pytest.mark.parametrize("host", ["anything.example", "demo.localhost:8000", "10.0.0.7:8080", ""])
def test_health_endpoints_answer_on_any_host(host: str) -> None:
    client = Client(HTTP_HOST=host) if host else Client()
    live = client.get("/livez")
    ready = client.get("/readyz")
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok"}}


def test_readyz_reports_a_dead_redis_with_503() -> None:
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["postgres"] == "ok"
    assert body["checks"]["redis"].startswith("failed: ")


def test_a_process_remembers_hosts_for_the_configured_time(alpha: Initiative) -> None:
    from tenants import selectors

    selectors._hosts.clear()
    with override_settings(HOST_CACHE_SECONDS=60):
        assert client_for(alpha).get("/").status_code == 200
        Initiative.objects.filter(pk=alpha.pk).update(state=InitiativeState.PROVISIONING)
        assert client_for(alpha).get("/").status_code == 200  # within the cache time: still served
        selectors._hosts.clear()
        assert client_for(alpha).get("/").status_code == 404
    selectors._hosts.clear()


def test_the_csp_header_built_once_equals_django_csps_own(alpha: Initiative) -> None:
    """The cached policy (eci_platform/csp.py) and the one django-csp builds per response agree, and a
    per-response policy still goes through django-csp."""
    from csp.utils import build_policy
    from django.http import HttpResponse
    from django.test import RequestFactory

    from eci_platform.csp import SettingsPolicyCSPMiddleware

    answered = client_for(alpha).get("/sign/")
    assert answered["Content-Security-Policy"] == build_policy()
    middleware = SettingsPolicyCSPMiddleware(lambda request: HttpResponse())
    request = RequestFactory().get("/")
    middleware.process_request(request)
    response = HttpResponse()
    response._csp_update = {"img-src": ["https://maps.example"]}  # type: ignore[attr-defined]
    assert "https://maps.example" in middleware.process_response(request, response)["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (RuntimeError("a bug in host routing"), 500),
        (OperationalError("the database is unreachable"), 503),  # with Retry-After: try again soon
    ],
    ids=["bug", "database-down"],
)
def test_a_failure_in_host_routing_is_a_500_page_with_the_security_headers(
    alpha: Initiative, monkeypatch: pytest.MonkeyPatch, failure: Exception, status: int
) -> None:
    def broken(hostname: str) -> None:
        raise failure

    monkeypatch.setattr("eci_platform.hosts.initiative_for_host", broken)
    client = Client(HTTP_HOST=f"{alpha.slug}.{settings.PLATFORM_DOMAIN}", raise_request_exception=False)
    response = client.get("/?lang=fr")
    assert response.status_code == status and 'lang="fr"' in response.content.decode()
    assert response.has_header("Retry-After") == (status == 503)
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff" and response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin" and "no-store" in response["Cache-Control"]
