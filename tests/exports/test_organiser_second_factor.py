"""The organisers' second factor on an initiative's site, over HTTP against committed initiatives: the
password alone reaches nothing, enrolment end to end, wrong codes refused and audited, backup codes good
once, the code asked again before an export request or a download link after 15 minutes, and a sign-in
or a session of one initiative worth nothing on another's host."""

from __future__ import annotations

import base64
import datetime
import json
import re

import pytest
import time_machine
from django.conf import settings
from django_otp.oath import TOTP

from tenants.models import SealedTOTPDevice
from tests.conftest import client_for
from tests.exports.conftest import PASSWORD, Factory, MakeUser
from tests.exports.organisers import (
    CODE,
    DASHBOARD,
    ENROL,
    EXPORTS,
    LOGIN,
    audit_of,
    done_job,
    jobs_of,
    page_text,
    signed_in,
)
from tests.second_factor import backup_codes, totp_code, totp_device

pytestmark = pytest.mark.usefixtures("_quick_password_hashing")


def test_a_password_alone_reaches_no_organiser_page(exporting_factory: Factory, make_user: MakeUser) -> None:
    exporting = exporting_factory({"DE": 1})
    organiser = make_user(exporting.initiative)
    totp_device(organiser)
    client = client_for(exporting.initiative)
    assert client.post(LOGIN, {"username": organiser.username, "password": PASSWORD})["Location"] == CODE
    for page in (EXPORTS, "/manage/funding/", "/manage/submission/", "/manage/emails.csv"):
        response = client.get(page)
        assert response.status_code == 302 and response["Location"].startswith(LOGIN), page
    assert client.post(EXPORTS, {"country": "DE"}).status_code == 302
    assert jobs_of(exporting.initiative) == []


def test_an_organiser_enrols_end_to_end(exporting_factory: Factory, make_user: MakeUser) -> None:
    exporting = exporting_factory({"DE": 1})
    organiser = make_user(exporting.initiative)  # no device yet
    client = client_for(exporting.initiative)
    password = client.post(LOGIN, {"username": organiser.username, "password": PASSWORD})
    assert password["Location"] == CODE
    assert client.get(CODE)["Location"] == ENROL
    page = client.get(ENROL)
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    text = page_text(page)
    assert "<svg" in text and "QR code" in text
    secret = re.search(r'<code class="secret"[^>]*>([A-Z2-7 ]+)</code>', text)
    assert secret is not None
    key = base64.b32decode(secret.group(1).replace(" ", ""))
    assert page_text(client.get(ENROL)).count(secret.group(1)) == 1  # the same secret until confirmed

    wrong = client.post(ENROL, {"code": "000000" if TOTP(key).token() else "111111"})
    assert wrong.status_code == 400 and "does not match" in page_text(wrong)
    [failure] = audit_of(exporting.initiative, "second_factor.failed")
    assert failure.details == {"user_id": organiser.pk, "site": "manage", "stage": "enrolment"}
    assert client.get(EXPORTS).status_code == 302

    done = client.post(ENROL, {"code": f"{TOTP(key).token():06d}"})
    assert done.status_code == 200 and "no-store" in done["Cache-Control"]
    codes = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", done.content.decode())
    assert len(codes) == 10 and len(set(codes)) == 10
    assert f'href="{EXPORTS}"' in done.content.decode()
    assert client.get(EXPORTS).status_code == 200
    [enrolled] = audit_of(exporting.initiative, "second_factor.enrolled")
    assert enrolled.actor == organiser.username
    assert enrolled.details == {"user_id": organiser.pk, "site": "manage", "backup_codes": 10}
    assert SealedTOTPDevice.objects.get(user=organiser).bin_key == key

    # Next time: the code step, where a backup code from that page signs in once.
    again = client_for(exporting.initiative)
    again.post(LOGIN, {"username": organiser.username, "password": PASSWORD})
    assert again.get(CODE).status_code == 200
    assert again.post(CODE, {"code": codes[0]})["Location"] == DASHBOARD
    later = client_for(exporting.initiative)
    later.post(LOGIN, {"username": organiser.username, "password": PASSWORD})
    assert later.post(CODE, {"code": codes[0]}).status_code == 400
    assert len(audit_of(exporting.initiative, "second_factor.backup_code_used")) == 1


def test_a_wrong_code_is_refused_and_audited(exporting_factory: Factory, make_user: MakeUser) -> None:
    exporting = exporting_factory({"DE": 1})
    organiser = make_user(exporting.initiative)
    device = totp_device(organiser)
    backup_codes(organiser)
    client = client_for(exporting.initiative)
    client.post(LOGIN, {"username": organiser.username, "password": PASSWORD})
    right = totp_code(device)
    wrong = f"{(int(right) + 1) % 1000000:06d}"
    for typed in (wrong, "<script>", "x" * 10000):
        response = client.post(CODE, {"code": typed})
        assert response.status_code == 400, typed
        assert "That code is not valid" in page_text(response)
        assert client.get(EXPORTS).status_code == 302
    events = audit_of(exporting.initiative, "second_factor.failed")
    assert [event.details["stage"] for event in events] == ["sign-in"] * 3
    assert not any(wrong in json.dumps(event.details) for event in events)
    # After a wrong code django-otp waits a second before it checks the device again.
    with time_machine.travel(datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(seconds=2)):
        assert client.post(CODE, {"code": right})["Location"] == DASHBOARD


def test_a_backup_code_signs_in_once(exporting_factory: Factory, make_user: MakeUser) -> None:
    exporting = exporting_factory({"DE": 1})
    organiser = make_user(exporting.initiative)
    totp_device(organiser)
    [code] = backup_codes(organiser, count=1)
    first, second = client_for(exporting.initiative), client_for(exporting.initiative)
    for client in (first, second):
        client.post(LOGIN, {"username": organiser.username, "password": PASSWORD})
    assert first.post(CODE, {"code": code})["Location"] == DASHBOARD
    assert second.post(CODE, {"code": code}).status_code == 400
    assert first.get(EXPORTS).status_code == 200 and second.get(EXPORTS).status_code == 302
    [used] = audit_of(exporting.initiative, "second_factor.backup_code_used")
    assert used.details["remaining"] == 0


def test_a_pending_sign_in_expires(exporting_factory: Factory, make_user: MakeUser) -> None:
    exporting = exporting_factory({"DE": 1})
    organiser = make_user(exporting.initiative)
    device = totp_device(organiser)
    client = client_for(exporting.initiative)
    with time_machine.travel(datetime.datetime.now(tz=datetime.UTC), tick=True) as traveller:
        client.post(LOGIN, {"username": organiser.username, "password": PASSWORD})
        traveller.shift(datetime.timedelta(seconds=settings.SECOND_FACTOR_PENDING_SECONDS + 1))
        assert client.post(CODE, {"code": totp_code(device)})["Location"] == LOGIN
        assert client.get(EXPORTS).status_code == 302


def test_an_export_request_asks_for_the_code_again_after_15_minutes(
    exporting_factory: Factory, make_user: MakeUser
) -> None:
    exporting = exporting_factory({"DE": 1})
    organiser = make_user(exporting.initiative)
    with time_machine.travel(datetime.datetime.now(tz=datetime.UTC), tick=True) as traveller:
        client = signed_in(exporting.initiative, organiser)
        traveller.shift(datetime.timedelta(minutes=14))
        job = done_job(exporting, client)  # within 15 minutes: straight through

        traveller.shift(datetime.timedelta(minutes=16))
        prompt = client.post(EXPORTS, {"country": "DE"})
        assert prompt.status_code == 200 and "second factor again" in page_text(prompt)
        assert '<input type="hidden" name="country" value="DE">' in prompt.content.decode()
        assert "csrfmiddlewaretoken" in prompt.content.decode()
        assert len(jobs_of(exporting.initiative)) == 1
        wrong = client.post(EXPORTS, {"country": "DE", "second_factor_code": "000000x"})
        assert wrong.status_code == 400 and len(jobs_of(exporting.initiative)) == 1
        [failure] = audit_of(exporting.initiative, "second_factor.failed")
        assert failure.details["stage"] == "re-verification"
        code = totp_code(totp_device(organiser))
        assert client.post(EXPORTS, {"country": "DE", "second_factor_code": code}).status_code == 303
        assert len(jobs_of(exporting.initiative)) == 2

        # A download link too.
        traveller.shift(datetime.timedelta(minutes=16))
        link = f"{EXPORTS}{job.pk}/link/"
        asked = client.post(link, {"kind": "file"})
        assert asked.status_code == 200 and "second factor again" in page_text(asked)
        assert audit_of(exporting.initiative, "export.download_link") == []
        code = totp_code(totp_device(organiser))
        given = client.post(link, {"kind": "file", "second_factor_code": code})
        assert given.status_code == 200 and "second factor again" not in page_text(given)
        assert len(audit_of(exporting.initiative, "export.download_link")) == 1


def test_a_sign_in_or_session_of_one_initiative_gets_nothing_on_anothers_host(
    exporting_factory: Factory, make_user: MakeUser
) -> None:
    a, b = exporting_factory({"DE": 1}), exporting_factory({"DE": 1})
    organiser = make_user(a.initiative)
    device = totp_device(organiser)
    # A pending sign-in of A cannot be finished on B's host.
    on_a = client_for(a.initiative)
    on_a.post(LOGIN, {"username": organiser.username, "password": PASSWORD})
    on_b = client_for(b.initiative)
    on_b.cookies[settings.SESSION_COOKIE_NAME] = on_a.cookies[settings.SESSION_COOKIE_NAME].value
    assert on_b.post(CODE, {"code": totp_code(device)})["Location"] == LOGIN
    assert on_b.get(EXPORTS).status_code == 302
    # Verified on A: nothing on B, with the session copied over either.
    verified = signed_in(a.initiative, organiser)
    assert verified.get(EXPORTS).status_code == 200
    on_b = client_for(b.initiative)
    on_b.cookies[settings.SESSION_COOKIE_NAME] = verified.cookies[settings.SESSION_COOKIE_NAME].value
    assert on_b.get(EXPORTS).status_code == 403
    assert on_b.post(EXPORTS, {"country": "DE", "second_factor_code": totp_code(device)}).status_code == 403
    assert jobs_of(b.initiative) == []
    # And their password does not start a sign-in on B at all.
    fresh = client_for(b.initiative)
    assert fresh.post(LOGIN, {"username": organiser.username, "password": PASSWORD}).status_code == 400


def test_the_team_and_the_addresses_ask_for_the_code_again_after_15_minutes(
    exporting_factory: Factory, make_user: MakeUser
) -> None:
    """Inviting, removing an organiser and downloading the signatories' e-mail addresses are as sensitive
    as an export: after 15 minutes they wait for the code, and write nothing meanwhile."""
    from tenants.models import OrganiserInvitation, OrganiserMembership

    exporting = exporting_factory({"DE": 1})
    initiative = exporting.initiative
    organiser, other = make_user(initiative), make_user(initiative)
    with time_machine.travel(datetime.datetime.now(tz=datetime.UTC), tick=True) as traveller:
        client = signed_in(initiative, organiser)
        traveller.shift(datetime.timedelta(minutes=16))
        for path, data in [
            ("/manage/organisers/", {"email": "invited@example.org"}),
            (f"/manage/organisers/{other.pk}/remove/", {}),
        ]:
            prompt = client.post(path, data)
            assert prompt.status_code == 200 and "second factor again" in page_text(prompt), path
        download = client.get("/manage/emails.csv")
        assert download.status_code == 200 and "second factor again" in page_text(download)
        assert 'action="/manage/emails.csv"' in download.content.decode()
        assert not OrganiserInvitation.objects.filter(initiative=initiative).exists()
        assert OrganiserMembership.objects.filter(user=other, initiative=initiative).exists()
        assert audit_of(initiative, "emails.downloaded") == []

        given = client.post("/manage/emails.csv", {"second_factor_code": totp_code(totp_device(organiser))})
        assert given.status_code == 200 and given["Content-Type"].startswith("text/csv")
        assert len(audit_of(initiative, "emails.downloaded")) == 1
        # Verified again just now: the team's changes go straight through.
        invited = client.post("/manage/organisers/", {"email": "invited@example.org"})
        assert invited.status_code == 303
        assert client.post(f"/manage/organisers/{other.pk}/remove/").status_code == 303
        assert not OrganiserMembership.objects.filter(user=other, initiative=initiative).exists()
