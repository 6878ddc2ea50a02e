"""Error pages of an initiative's site speak the visitor's language, say so in <html lang>, and are never
cached; the 500 page needs no database and survives a failure of its own template; PostgreSQL or Redis out
of reach is a 503 with Retry-After, not a 500."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator

import kombu.exceptions
import psycopg
import pytest
import redis.exceptions
from django.conf import settings
from django.db import OperationalError
from django.test import Client, RequestFactory, override_settings
from django.utils import translation
from django.utils.translation import gettext
from pytest_django.plugin import DjangoDbBlocker

from collection.models import Statement
from eci_platform import error_pages
from tenants.db import connection
from tenants.models import Initiative
from tests.collection.signing import valid_form
from tests.conftest import client_for, host_of, solved_proof
from tests.processes import free_port

NOT_FOUND = "There is no page at this address. Check the address you were given."
BAD_REQUEST = (
    "Your browser sent something this site cannot accept. Please go back, reload the page and try again."
)
SERVER_ERROR = "An error on this site stopped your request. Please try again in a few minutes."
FORM_NOT_SENT = "The form could not be sent"
ACCESS_DENIED = "You are not allowed to see this page."
UNAVAILABLE = "This site is briefly unavailable"
TRY_AGAIN = (
    "Please try again in a few seconds. Your support is recorded once you see its receipt, and never twice."
)


def translated(message: str, language: str) -> str:
    # {% translate %} puts catalogue texts in the page as they are (they are trusted, not escaped).
    with translation.override(language):
        return gettext(message)


def assert_page_in(response: object, language: str, message: str, status: int) -> None:
    body = response.content.decode()  # type: ignore[attr-defined]
    assert response.status_code == status  # type: ignore[attr-defined]
    assert f'<html lang="{language}">' in body
    assert translated(message, language) in body
    if language != "en":
        assert message not in body  # really translated, not Django's or our English
    assert response["Content-Language"] == language  # type: ignore[index]
    assert "no-store" in response["Cache-Control"]  # type: ignore[index]


@pytest.mark.django_db
def test_an_unknown_receipt_is_a_404_in_the_language_asked_for(alpha: Initiative) -> None:
    response = client_for(alpha).get(f"/receipt/{uuid.uuid4()}/?lang=fr")
    assert_page_in(response, "fr", NOT_FOUND, 404)
    assert 'href="/?lang=fr"' in response.content.decode()  # back to the initiative, in French


@pytest.mark.django_db
def test_an_unknown_country_is_a_404_in_the_browsers_language(alpha: Initiative) -> None:
    response = client_for(alpha).get("/sign/XX/", HTTP_ACCEPT_LANGUAGE="fr-BE,fr;q=0.9,en;q=0.5")
    assert_page_in(response, "fr", NOT_FOUND, 404)
    assert "Accept-Language" in response["Vary"]


@pytest.mark.django_db
@pytest.mark.parametrize("language", [code for code, _name in settings.LANGUAGES])
def test_the_404_page_exists_in_every_official_language(alpha: Initiative, language: str) -> None:
    response = client_for(alpha).get(f"/no/such/page/?lang={language}")
    assert_page_in(response, language, NOT_FOUND, 404)


@pytest.mark.django_db
def test_without_a_choice_the_404_page_is_in_the_registered_language(alpha: Initiative) -> None:
    Initiative.objects.filter(pk=alpha.pk).update(registered_language="de")
    response = client_for(alpha).get("/no/such/page/")
    assert_page_in(response, "de", NOT_FOUND, 404)


@pytest.mark.django_db
def test_too_many_fields_is_a_400_in_the_language_asked_for(alpha: Initiative) -> None:
    fields = {f"field{number}": "x" for number in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)}
    response = client_for(alpha).post("/sign/AT/?lang=fr", {**valid_form("AT"), **fields})
    assert_page_in(response, "fr", BAD_REQUEST, 400)


@pytest.mark.django_db
def test_a_refused_query_string_is_a_400_in_the_browsers_language(alpha: Initiative) -> None:
    """The query string is what Django refused, so ?lang= cannot be read: the browser's language."""
    query = "&".join(f"f{number}=x" for number in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = client_for(alpha).get(f"/sign/AT/?lang=fr&{query}", HTTP_ACCEPT_LANGUAGE="de")
    assert_page_in(response, "de", BAD_REQUEST, 400)


@pytest.mark.django_db
def test_a_csrf_failure_is_our_page_in_the_language_asked_for(alpha: Initiative) -> None:
    client = Client(HTTP_HOST=host_of(alpha), enforce_csrf_checks=True)
    response = client.post("/sign/AT/?lang=fr", valid_form("AT"))  # no CSRF cookie or token
    assert_page_in(response, "fr", FORM_NOT_SENT, 403)
    assert 'href="/?lang=fr"' in response.content.decode()


@pytest.mark.django_db
def test_a_server_error_is_a_500_in_the_language_asked_for(
    alpha: Initiative, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("the counts are unreachable")

    monkeypatch.setattr("collection.views.progress_published", broken)
    client = Client(HTTP_HOST=host_of(alpha), raise_request_exception=False)
    response = client.get("/?lang=fr")
    assert_page_in(response, "fr", SERVER_ERROR, 500)
    assert "unreachable" not in response.content.decode()


def test_the_500_page_touches_no_database() -> None:
    """Not marked django_db: any query here fails the test."""
    request = RequestFactory().get("/", HTTP_ACCEPT_LANGUAGE="pl")
    request.tenant = Initiative(slug="unsaved", registered_language="de")
    assert_page_in(error_pages.server_error(request), "pl", SERVER_ERROR, 500)
    request = RequestFactory().get("/")
    request.tenant = Initiative(slug="unsaved", registered_language="de")
    assert_page_in(error_pages.server_error(request), "de", SERVER_ERROR, 500)


def test_the_500_page_survives_a_failure_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("template storage gone")

    monkeypatch.setattr(error_pages, "render_to_string", broken)
    response = error_pages.server_error(RequestFactory().get("/?lang=fr"))
    assert response.status_code == 500
    assert (
        '<html lang="en">' in response.content.decode()
        and "Something went wrong" in response.content.decode()
    )
    assert "no-store" in response["Cache-Control"]


def test_a_permission_denied_page_speaks_the_visitors_language() -> None:
    request = RequestFactory().get("/?lang=it")
    response = error_pages.permission_denied(request, PermissionError())
    assert_page_in(response, "it", ACCESS_DENIED, 403)


@pytest.mark.django_db
def test_the_platform_domain_has_the_same_pages(platform_client: Client) -> None:
    # There the locale middleware chooses the language (the operator console signs people in).
    response = platform_client.get("/no/such/page/", HTTP_ACCEPT_LANGUAGE="fr")
    assert_page_in(response, "fr", NOT_FOUND, 404)
    assert 'href="/?lang=' not in response.content.decode()  # no initiative to go back to


def assert_unavailable_page_in(response: object, language: str) -> None:
    assert_page_in(response, language, UNAVAILABLE, 503)
    assert translated(TRY_AGAIN, language) in response.content.decode()  # type: ignore[attr-defined]
    assert response["Retry-After"] == str(error_pages.RETRY_AFTER_SECONDS)  # type: ignore[index]


@contextlib.contextmanager
def redis_out_of_reach() -> Iterator[None]:
    """The cache (rate limits, spent proofs, counts) on a loopback port where no Redis listens."""
    nowhere = {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}
    with override_settings(CACHES={"default": nowhere}):
        yield


@pytest.mark.django_db
def test_signing_while_redis_is_out_of_reach_is_a_503_with_retry_after_and_stores_nothing(
    alpha: Initiative, caplog: pytest.LogCaptureFixture
) -> None:
    client = Client(HTTP_HOST=host_of(alpha), raise_request_exception=False)
    proof = solved_proof(client)  # while Redis answers: the challenge page asks it for the pressure
    form = valid_form("AT")
    with redis_out_of_reach(), caplog.at_level(logging.INFO):
        response = client.post("/sign/AT/?lang=fr", {**form, "altcha": proof})
        challenge = client.get("/altcha/challenge.json")
    assert_unavailable_page_in(response, "fr")
    # One warning line per request, not Django's traceback; no personal data in it.
    (line, _challenge_line) = [r for r in caplog.records if r.name == "eci_platform.error_pages"]
    assert line.levelno == logging.WARNING and line.exc_info is None
    assert line.getMessage().startswith("service unavailable: POST sign-form: ConnectionError: ")
    assert not [r for r in caplog.records if r.name == "django.request"]
    assert form["family_names"] not in caplog.text and form["document_number"] not in caplog.text
    assert challenge.status_code == 503 and challenge["Retry-After"]
    with alpha:
        assert not Statement.objects.exists()
    # Redis back: the same proof and form are accepted.
    response = client.post("/sign/AT/?lang=fr", {**form, "altcha": proof})
    assert response.status_code == 303


def test_pages_while_postgresql_is_out_of_reach_are_a_503_with_retry_after(
    django_db_blocker: DjangoDbBlocker,
) -> None:
    """The connection pointed at a loopback port where no PostgreSQL listens: host routing, the first
    query of every request, fails to connect."""
    client = Client(HTTP_HOST=f"alpha.{settings.PLATFORM_DOMAIN}", raise_request_exception=False)
    with django_db_blocker.unblock():
        connection.close()
        saved = dict(connection.settings_dict)
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(free_port()))
        try:
            with pytest.raises(OperationalError):
                connection.ensure_connection()  # really out of reach
            form = client.get("/sign/AT/", HTTP_ACCEPT_LANGUAGE="de")
            sent = client.post("/sign/AT/?lang=pl", valid_form("AT"))
        finally:
            connection.close()
            connection.settings_dict.clear()
            connection.settings_dict.update(saved)
    assert_unavailable_page_in(form, "de")
    assert_unavailable_page_in(sent, "pl")


@pytest.mark.parametrize(
    "lost",
    [
        OperationalError("server closed the connection unexpectedly"),
        psycopg.OperationalError("connection refused"),
        redis.exceptions.ConnectionError("Connection refused"),
        kombu.exceptions.OperationalError("broker unreachable"),
    ],
    ids=type,
)
def test_an_error_raised_from_a_lost_connection_is_a_503_any_other_a_500(lost: Exception) -> None:
    request = RequestFactory().get("/?lang=en")
    try:
        try:
            raise lost
        except type(lost) as error:
            raise RuntimeError("while rendering") from error
    except RuntimeError:
        assert_unavailable_page_in(error_pages.server_error(request), "en")
    try:
        raise ValueError("a bug")
    except ValueError:
        response = error_pages.server_error(request)
    assert_page_in(response, "en", SERVER_ERROR, 500)
    assert not response.has_header("Retry-After")
