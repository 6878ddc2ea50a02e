"""The organisers' pages under /manage/ on an initiative's site: sign-in limited to the initiative's
organisers, refusals that tell nothing apart, the limit on failed sign-ins, signing out, and who may use
the pages (sessions bound to their site, membership checked on every request, CSRF). Against committed
initiatives (real tenants with domains), the real session table and Redis."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from tenants import throttle
from tenants.models import OrganiserMembership
from tests.conftest import client_for, host_of
from tests.exports.conftest import PASSWORD, Factory, MakeUser
from tests.exports.organisers import (
    CODE,
    DASHBOARD,
    EXPORTS,
    LOGIN,
    audit_of,
    done_job,
    jobs_of,
    page_text,
    signed_in,
)
from tests.second_factor import totp_code, totp_device, two_step_sign_in, verified_login

pytestmark = pytest.mark.usefixtures("_quick_password_hashing")


# -- signing in -------------------------------------------------------------------------------------------


def test_an_organiser_signs_in_and_reaches_the_exports(
    exporting_factory: Factory, make_user: MakeUser
) -> None:
    exporting = exporting_factory({"DE": 1})
    organiser = make_user(exporting.initiative)
    client = client_for(exporting.initiative)

    page = client.get(LOGIN, HTTP_ACCEPT_LANGUAGE="fr")
    assert page.status_code == 200
    text = page_text(page)
    assert '<html lang="en">' in text and '<label for="id_username">' in text  # English, whatever asked
    device = totp_device(organiser)
    response = client.post(LOGIN, {"username": organiser.username, "password": PASSWORD})
    assert (response.status_code, response["Location"]) == (302, CODE)
    assert client.get(EXPORTS)["Location"] == f"{LOGIN}?next={EXPORTS}"  # the password alone: not yet
    code_page = client.get(CODE)
    assert code_page.status_code == 200 and 'autocomplete="one-time-code"' in page_text(code_page)
    assert "no-store" in code_page["Cache-Control"]
    response = client.post(CODE, {"code": totp_code(device)})
    assert (response.status_code, response["Location"]) == (303, DASHBOARD)
    exports = client.get(EXPORTS)
    assert exports.status_code == 200
    assert "Exports for the competent authorities" in page_text(exports)
    assert f"Signed in as {organiser.username}" in page_text(exports)
    assert "no-store" in exports["Cache-Control"]


def _normalised(response: Any) -> str:
    """The page without what differs between any two renderings: the CSRF token and the typed name."""
    text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", response.content.decode())
    return re.sub(r'(name="username"[^>]*?) value="[^"]*"', r"\1", text)


def test_a_refused_sign_in_says_the_same_for_unknown_user_wrong_password_and_non_organiser(
    exporting_factory: Factory, make_user: MakeUser
) -> None:
    exporting, other = exporting_factory({"DE": 1}), exporting_factory({})
    organiser = make_user(exporting.initiative)
    outsider = make_user(other.initiative)  # right password, wrong initiative
    staff = make_user(is_staff=True, is_superuser=True)
    attempts = {
        "unknown user": {"username": "nobody-here@example.org", "password": PASSWORD},
        "wrong password": {"username": organiser.username, "password": "not the passphrase at all"},
        "organiser of another initiative": {"username": outsider.username, "password": PASSWORD},
        "operator staff": {"username": staff.username, "password": PASSWORD},
    }
    pages = {}
    for case, data in attempts.items():
        client = client_for(exporting.initiative)
        response = client.post(LOGIN, data)
        assert response.status_code == 400, case
        assert "do not match an organiser of this initiative" in page_text(response), case
        assert client.get(EXPORTS).status_code == 302, case  # still signed out
        pages[case] = _normalised(response)
    assert len(set(pages.values())) == 1, "the refusals must not tell the cases apart"


def test_sign_in_follows_a_local_next_only(exporting_factory: Factory, make_user: MakeUser) -> None:
    exporting = exporting_factory({"DE": 1})
    organiser = make_user(exporting.initiative)
    for wanted, expected in [
        (f"{EXPORTS}?x=1", f"{EXPORTS}?x=1"),
        ("https://evil.example/", DASHBOARD),
        ("//evil.example/manage/", DASHBOARD),
    ]:
        client = client_for(exporting.initiative)
        response = two_step_sign_in(client, LOGIN, organiser, PASSWORD, next=wanted)
        assert (response.status_code, response["Location"]) == (303, expected)


def test_repeated_failed_sign_ins_are_refused_for_a_while_even_with_the_right_password(
    exporting_factory: Factory, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(throttle.FREE_FAILURES, throttle.ACCOUNT_FROM_NETWORK, 3)
    exporting = exporting_factory({"DE": 1})
    organiser, colleague = make_user(exporting.initiative), make_user(exporting.initiative)
    client = client_for(exporting.initiative)
    for _attempt in range(3):
        assert client.post(LOGIN, {"username": organiser.username, "password": "wrong"}).status_code == 400
    blocked = client.post(LOGIN, {"username": organiser.username, "password": PASSWORD})
    assert blocked.status_code == 429 and int(blocked["Retry-After"]) > 0
    assert "Too many failed sign-ins" in page_text(blocked)
    assert "Please try again in 30 seconds" in page_text(blocked)
    assert client.get(EXPORTS).status_code == 302
    # An unknown name is counted the same way: the answer tells nothing about who exists.
    for _attempt in range(3):
        client.post(LOGIN, {"username": "nobody-here@example.org", "password": "wrong"})
    assert client.post(LOGIN, {"username": "nobody-here@example.org", "password": "x"}).status_code == 429
    # Another account from the same network is not locked out by these.
    assert signed_in(exporting.initiative, colleague).get(EXPORTS).status_code == 200


def test_signing_out_needs_a_post_and_ends_the_session(
    exporting_factory: Factory, make_user: MakeUser
) -> None:
    exporting = exporting_factory({"DE": 1})
    client = signed_in(exporting.initiative, make_user(exporting.initiative))
    assert client.get("/manage/logout/").status_code == 405
    response = client.post("/manage/logout/")
    assert (response.status_code, response["Location"]) == (302, LOGIN)
    assert client.get(EXPORTS).status_code == 302


# -- who may use the pages ----------------------------------------------------------------------------------


def test_simultaneous_failed_sign_ins_cannot_slip_under_the_limit_together(
    exporting_factory: Factory, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from django.db import connection

    monkeypatch.setitem(throttle.FREE_FAILURES, throttle.ACCOUNT_FROM_NETWORK, 3)
    exporting = exporting_factory({"DE": 1})
    organiser = make_user(exporting.initiative)
    start = threading.Barrier(8)
    answers: list[int] = []

    def attempt() -> None:
        try:
            client = client_for(exporting.initiative)
            start.wait()
            answers.append(
                client.post(LOGIN, {"username": organiser.username, "password": "wrong"}).status_code
            )
        finally:
            connection.close()  # this thread's own

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(answers) == [400, 400, 400, 429, 429, 429, 429, 429], "three checked, the rest refused"


def test_anonymous_visitors_are_sent_to_sign_in(exporting_factory: Factory) -> None:
    exporting = exporting_factory({"DE": 1})
    client = client_for(exporting.initiative)
    response = client.get(EXPORTS)
    assert (response.status_code, response["Location"]) == (302, f"{LOGIN}?next={EXPORTS}")
    assert client.get(DASHBOARD)["Location"] == f"{LOGIN}?next={DASHBOARD}"
    # A form's target sends back to the dashboard after signing in, not to a GET of the form target.
    posted = client.post(f"{EXPORTS}1/link/", {"kind": "file"})
    assert (posted.status_code, posted["Location"]) == (302, f"{LOGIN}?next={DASHBOARD}")
    assert client.post(EXPORTS, {"country": "DE"}).status_code == 302
    assert jobs_of(exporting.initiative) == []


def test_an_organiser_of_one_initiative_is_refused_on_anothers_site_with_a_copied_session(
    exporting_factory: Factory, make_user: MakeUser
) -> None:
    a, b = exporting_factory({"DE": 1}), exporting_factory({"DE": 1})
    on_a = signed_in(a.initiative, make_user(a.initiative))
    on_b = client_for(b.initiative)
    on_b.cookies[settings.SESSION_COOKIE_NAME] = on_a.cookies[settings.SESSION_COOKIE_NAME].value

    response = on_b.get(EXPORTS)
    assert response.status_code == 403
    assert "cannot use this initiative's organiser pages" in page_text(response)
    assert on_b.post(EXPORTS, {"country": "DE"}).status_code == 403
    assert jobs_of(b.initiative) == []
    assert on_a.get(EXPORTS).status_code == 200  # the session still works where it was opened


def test_a_session_of_another_site_is_refused_even_for_an_organiser_of_both(
    exporting_factory: Factory, make_user: MakeUser
) -> None:
    a, b = exporting_factory({"DE": 1}), exporting_factory({"DE": 1})
    on_a = signed_in(a.initiative, make_user(a.initiative, b.initiative))
    on_b = client_for(b.initiative)
    on_b.cookies[settings.SESSION_COOKIE_NAME] = on_a.cookies[settings.SESSION_COOKIE_NAME].value
    assert on_b.get(EXPORTS).status_code == 403


def test_membership_is_checked_on_every_request_and_staff_are_not_organisers(
    exporting_factory: Factory, make_user: MakeUser
) -> None:
    exporting = exporting_factory({"DE": 1})
    organiser = make_user(exporting.initiative)
    client = signed_in(exporting.initiative, organiser)
    assert client.get(EXPORTS).status_code == 200
    OrganiserMembership.objects.filter(user=organiser).delete()
    assert client.get(EXPORTS).status_code == 403

    # Even with a second factor, a staff account is no organiser.
    staff = verified_login(client_for(exporting.initiative), make_user(is_staff=True, is_superuser=True))
    assert staff.get(EXPORTS).status_code == 403


def test_forms_need_the_csrf_token(exporting_factory: Factory, make_user: MakeUser) -> None:
    exporting = exporting_factory({"DE": 1})
    organiser = make_user(exporting.initiative)
    client = Client(HTTP_HOST=host_of(exporting.initiative), enforce_csrf_checks=True)
    assert client.post(LOGIN, {"username": organiser.username, "password": PASSWORD}).status_code == 403
    trusted = signed_in(exporting.initiative, organiser)
    job = done_job(exporting, trusted)
    client.cookies[settings.SESSION_COOKIE_NAME] = trusted.cookies[settings.SESSION_COOKIE_NAME].value
    assert client.get(EXPORTS).status_code == 200  # signed in: what follows is refused for the token
    assert client.post(EXPORTS, {"country": "DE"}).status_code == 403
    assert client.post(f"{EXPORTS}{job.pk}/link/", {"kind": "file"}).status_code == 403
    assert len(jobs_of(exporting.initiative)) == 1
    assert audit_of(exporting.initiative, "export.download_link") == []
