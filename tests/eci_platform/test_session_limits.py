"""Sessions on the operator console and the organisers' pages end 30 minutes after the last request and
12 hours after signing in, whatever the activity; the expired session is signed out and its sign-in page
says why. Over HTTP, signing in through the real sign-in pages, travelling in time."""

from __future__ import annotations

import datetime
import html
from collections.abc import Iterator

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.utils import timezone

from eci_platform.session_limits import SIGNED_IN_AT
from tenants.models import Initiative, OrganiserMembership
from tests.conftest import host_of
from tests.second_factor import two_step_sign_in

pytestmark = pytest.mark.django_db

PASSWORD = "a long and good passphrase 42"
CONSOLE = "/operator/"
MANAGE = "/manage/exports/"
IDLE_MESSAGE = "You were signed out after 30 minutes without activity. Please sign in again."
ABSOLUTE_MESSAGE = "Sessions last at most 12 hours: yours has ended. Please sign in again."


@pytest.fixture(autouse=True)
def _quick_password_hashing() -> Iterator[None]:
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


def _expired(client: Client, page: str, login: str, message: str) -> None:
    response = client.get(page)
    assert (response.status_code, response["Location"]) == (302, f"{login}?next={page}")
    shown = client.get(response["Location"])
    assert shown.status_code == 200
    assert message in html.unescape(shown.content.decode())
    again = client.get(page)  # signed out: the sign-in page, with no message this time
    assert again.status_code == 302
    assert message not in html.unescape(client.get(again["Location"]).content.decode())


def test_a_session_expires_after_30_idle_minutes(alpha: Initiative) -> None:
    # Signed in inside the travel, so that the sign-in time is the travel's.
    for kind in ("operator", "organiser"):
        with time_machine.travel(timezone.now(), tick=False) as traveller:
            client, page, login = _sign_in(kind, alpha)
            assert client.get(page).status_code == 200
            for _step in range(3):  # activity keeps it alive past 30 minutes in all
                traveller.shift(datetime.timedelta(minutes=29))
                assert client.get(page).status_code == 200
            traveller.shift(datetime.timedelta(minutes=31))
            _expired(client, page, login, IDLE_MESSAGE)


def test_a_session_expires_12_hours_after_sign_in_however_active(alpha: Initiative) -> None:
    for kind in ("operator", "organiser"):
        with time_machine.travel(timezone.now(), tick=False) as traveller:
            client, page, login = _sign_in(kind, alpha)
            for _step in range(28):  # a request every 25 minutes: 11 h 40 min
                traveller.shift(datetime.timedelta(minutes=25))
                assert client.get(page).status_code == 200
            traveller.shift(datetime.timedelta(minutes=19))
            assert client.get(page).status_code == 200  # 11 h 59 min
            traveller.shift(datetime.timedelta(minutes=2))
            _expired(client, page, login, ABSOLUTE_MESSAGE)


def test_a_signed_in_session_without_its_sign_in_time_is_expired(alpha: Initiative) -> None:
    client, page, login = _sign_in("organiser", alpha)
    session = client.session
    del session[SIGNED_IN_AT]
    session.save()
    _expired(client, page, login, "Your session has expired. Please sign in again.")


def test_the_session_cookie_lasts_12_hours_at_most(alpha: Initiative) -> None:
    for kind in ("operator", "organiser"):
        client, _page, _login = _sign_in(kind, alpha)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME]
        assert int(cookie["max-age"]) == 12 * 60 * 60 == settings.SESSION_COOKIE_AGE
        assert cookie["httponly"]


def test_the_session_cookie_is_http_only_and_same_site_lax(alpha: Initiative) -> None:
    for kind in ("operator", "organiser"):
        client, _page, _login = _sign_in(kind, alpha)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME]
        assert cookie["httponly"] and cookie["samesite"] == "Lax"
        assert not cookie["domain"]  # host-only: an initiative's cookie never reaches another host


def test_a_post_with_an_expired_session_changes_nothing_and_returns_to_the_sign_in_page(
    alpha: Initiative,
) -> None:
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        client, page, login = _sign_in("organiser", alpha)
        traveller.shift(datetime.timedelta(minutes=31))
        response = client.post(page, {"country": "DE"})
        assert (response.status_code, response["Location"]) == (302, f"{login}?next=")
        with alpha:
            from exports.models import ExportJob

            assert not ExportJob.objects.exists()


def _sign_in(kind: str, alpha: Initiative) -> tuple[Client, str, str]:
    users = get_user_model().objects
    if kind == "operator":
        user = users.create_user(f"operator-{users.count()}", password=PASSWORD, is_staff=True)
        client, page, login = Client(HTTP_HOST=settings.PLATFORM_DOMAIN), CONSOLE, "/operator/login/"
    else:
        user = users.create_user(f"organiser-{users.count()}@example.org", password=PASSWORD)
        OrganiserMembership.objects.create(user=user, initiative=alpha)
        client, page, login = Client(HTTP_HOST=host_of(alpha)), MANAGE, "/manage/login/"
    signed_in = two_step_sign_in(client, login, user, PASSWORD, next=page)
    assert signed_in.status_code == 303, signed_in.content.decode()
    return client, page, login
