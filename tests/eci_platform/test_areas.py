"""Sessions, sign-in, messages and locale negotiation run where someone signs in, and only there."""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import translation
from django.utils.html import escape
from django.utils.translation import gettext

from collection.models import Statement
from tenants.models import Initiative
from tests.collection.signing import sign, valid_form
from tests.conftest import client_for, host_of

pytestmark = pytest.mark.django_db


def test_signing_leaves_no_session_behind(alpha: Initiative) -> None:
    form_page = client_for(alpha).get("/sign/AT/")
    signed = sign(alpha, "AT", valid_form("AT"))
    assert form_page.status_code == 200 and signed.status_code == 303
    for response in (form_page, signed):
        assert "sessionid" not in response.cookies
        # The page chose its language from the browser's when no ?lang= was given: caches must know.
        assert "Accept-Language" in response["Vary"]
    assert set(form_page.cookies) == {"csrftoken"}
    assert not Session.objects.exists()


def test_public_pages_have_no_request_session_or_user(alpha: Initiative) -> None:
    response = client_for(alpha).get("/")
    assert response.status_code == 200
    assert not hasattr(response.wsgi_request, "session") and not hasattr(response.wsgi_request, "user")
    assert not hasattr(response.wsgi_request, "LANGUAGE_CODE")


def test_organiser_pages_of_an_initiative_have_sessions_and_the_locale(alpha: Initiative) -> None:
    response = client_for(alpha).get("/manage/login/", HTTP_ACCEPT_LANGUAGE="fr")
    assert response.status_code == 200
    assert hasattr(response.wsgi_request, "session") and hasattr(response.wsgi_request, "user")
    assert response.wsgi_request.LANGUAGE_CODE == "fr"  # set by Django's locale middleware


def test_the_operator_console_has_sessions(platform_client: Client) -> None:
    response = platform_client.get("/operator/login/")
    assert response.status_code == 200
    assert hasattr(response.wsgi_request, "session") and hasattr(response.wsgi_request, "user")


@pytest.mark.parametrize(("path", "accept_language"), [("/sign/AT/?lang=fr", ""), ("/sign/AT/", "fr-BE")])
def test_a_csrf_failure_on_a_public_page_speaks_the_visitors_language(
    alpha: Initiative, path: str, accept_language: str
) -> None:
    with translation.override("fr"):
        expected = gettext("CSRF verification failed. Request aborted.")
    assert expected != "CSRF verification failed. Request aborted."  # Django has French: this can fail
    client = Client(HTTP_HOST=host_of(alpha), enforce_csrf_checks=True)
    # No CSRF cookie or token.
    response = client.post(path, valid_form("AT"), HTTP_ACCEPT_LANGUAGE=accept_language)
    assert response.status_code == 403
    assert escape(expected) in response.content.decode()
    with alpha:
        assert not Statement.objects.exists()
