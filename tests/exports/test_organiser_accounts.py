"""The organisers' account pages on an initiative's site: joining by an invitation link (once, before it
expires, on its own initiative's site only, with Django's password validators, or with an existing
account's password), the password reset by e-mail (only organisers of this initiative get a message; the
answer never tells), the password change, and the team page (invite, remove: the removed account is
signed out at once). Over HTTP with the test client, against PostgreSQL, Redis and, once, a real SMTP
server (aiosmtpd) in this process."""

from __future__ import annotations

import datetime
import re
import threading
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any
from urllib.parse import urlsplit

import pytest
import time_machine
from aiosmtpd.controller import Controller
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client, override_settings
from django.utils import timezone

from exports.tasks import send_password_reset_mail
from tenants.audit import COMMAND_LINE_ACTOR
from tenants.models import AuditEvent, Initiative, OrganiserInvitation, OrganiserMembership
from tenants.organisers import organiser_invite
from tests.conftest import before_task_publish_seen, client_for, host_of
from tests.processes import free_port
from tests.second_factor import totp_code, totp_device, two_step_sign_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("_quick_password_hashing")]

PASSWORD = "a long organiser passphrase 42"
NEW_PASSWORD = "another quite long passphrase 7"
ADDRESS = "joining@example.org"
ACCEPT = "/manage/invitation/accept/"
LOGIN = "/manage/login/"
CODE_STEP = "/manage/login/code/"
LINK = re.compile(r"https?://\S+/manage/\S+/")


def text(response: Any) -> str:
    import html

    return html.unescape(response.content.decode())


def link_in(message: Any) -> str:
    found = LINK.search(str(message.body))
    assert found, message.body
    return found.group(0)


def invited(initiative: Initiative, email: str = ADDRESS) -> tuple[OrganiserInvitation, str]:
    """An invitation made by the service; returns it and the path of its link."""
    mail.outbox.clear()
    invitation = organiser_invite(initiative, email=email, actor=COMMAND_LINE_ACTOR)
    (message,) = mail.outbox
    link = link_in(message)
    assert urlsplit(link).hostname == host_of(initiative)
    return invitation, urlsplit(link).path


def organiser(initiative: Initiative | None, username: str, **fields: Any) -> User:
    user = get_user_model().objects.create_user(username, username, PASSWORD, **fields)
    if initiative is not None:
        OrganiserMembership.objects.create(user=user, initiative=initiative)
    return user


def signed_in(initiative: Initiative, user: User, password: str = PASSWORD) -> Client:
    client = client_for(initiative)
    response = two_step_sign_in(client, LOGIN, user, password)
    assert response.status_code == 303, text(response)
    return client


def written() -> tuple[int, ...]:
    return (
        OrganiserInvitation.objects.filter(accepted_at__isnull=False).count(),
        AuditEvent.objects.count(),
        OrganiserMembership.objects.count(),
        get_user_model().objects.count(),
    )


@pytest.fixture
def _quick_password_hashing() -> Iterator[None]:
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


# -- joining by an invitation -------------------------------------------------------------------------------


def test_the_invitation_link_works_once_and_then_the_organiser_signs_in(alpha: Initiative) -> None:
    invitation, path = invited(alpha)
    client = client_for(alpha)
    first = client.get(path)
    # The token moves into the session: the form's page has none in its address.
    assert (first.status_code, first["Location"]) == (302, ACCEPT)
    form = client.get(ACCEPT)
    assert form.status_code == 200
    assert ADDRESS in text(form) and 'autocomplete="new-password"' in text(form)
    response = client.post(ACCEPT, {"new_password1": PASSWORD, "new_password2": PASSWORD})
    # The password was just given: the second factor follows at once, without a second sign-in.
    assert (response.status_code, response["Location"]) == (303, CODE_STEP)
    enrolment = client.get(CODE_STEP)
    assert (enrolment.status_code, enrolment["Location"]) == (303, "/manage/login/enrol/")
    enrol_page = text(client.get("/manage/login/enrol/"))
    assert "You are now an organiser" in enrol_page and "Set up your second factor" in enrol_page
    assert client.get("/manage/exports/").status_code == 302  # not signed in before the second factor

    user = get_user_model().objects.get(username=ADDRESS)
    assert user.email == ADDRESS and not user.is_staff and user.check_password(PASSWORD)
    assert OrganiserMembership.objects.filter(user=user, initiative=alpha).exists()
    invitation.refresh_from_db()
    assert invitation.accepted_at is not None
    event = AuditEvent.objects.get(action="organiser.joined")
    assert event.details == {"invitation_id": invitation.pk, "user_id": user.pk, "account": "new"}
    signed_in(alpha, user)

    # A second use, by link or by posting to it, changes nothing.
    before = written()
    for again in (client_for(alpha).get(path), client_for(alpha).post(path, {"new_password1": "x"})):
        assert again.status_code == 410
        assert "already been used" in text(again)
    assert written() == before


def test_posting_to_the_link_itself_joins_too(alpha: Initiative) -> None:
    _invitation, path = invited(alpha)
    response = client_for(alpha).post(path, {"new_password1": PASSWORD, "new_password2": PASSWORD})
    assert response.status_code == 303
    assert OrganiserMembership.objects.filter(user__username=ADDRESS, initiative=alpha).exists()


def test_an_expired_invitation_is_gone_and_nothing_is_written(alpha: Initiative) -> None:
    invitation, path = invited(alpha)
    client = client_for(alpha)
    before = written()
    # (A session lasts 12 hours at most, an invitation 72: each visit below starts from the link.)
    with time_machine.travel(invitation.expires_at - datetime.timedelta(minutes=1)):
        assert client.get(path).status_code == 302  # the token is in the session now
        assert client.get(ACCEPT).status_code == 200  # just before, still good
    with time_machine.travel(invitation.expires_at + datetime.timedelta(seconds=1)):
        for response in (
            client.get(path),
            client.post(path, {"new_password1": PASSWORD, "new_password2": PASSWORD}),
        ):
            assert response.status_code == 410
            assert "expired" in text(response)
    assert written() == before


def test_a_token_of_one_initiative_is_unknown_on_anothers_site(alpha: Initiative, beta: Initiative) -> None:
    _invitation, path = invited(alpha)
    before = written()
    other = client_for(beta)
    for response in (
        other.get(path),
        other.post(path, {"new_password1": PASSWORD, "new_password2": PASSWORD}),
    ):
        assert response.status_code == 404
        assert "not valid on this site" in text(response)
    assert written() == before


@pytest.mark.parametrize("token", ["x" * 43, "accept", "a" * 500, "%00"])
def test_an_unknown_token_is_a_clear_404(alpha: Initiative, token: str) -> None:
    response = client_for(alpha).get(f"/manage/invitation/{token}/")
    assert response.status_code == 404
    assert "not valid on this site" in text(response)


@pytest.mark.parametrize(
    ("password", "again", "problem"),
    [
        ("short pw 1", "short pw 1", "too short"),
        ("eleven char", "eleven char", "too short"),  # 11: the minimum is 12
        ("joining@example.org!", "joining@example.org!", "too similar"),
        ("password1234", "password1234", "too common"),
        (PASSWORD, PASSWORD + "x", "The two passwords are not the same"),
        ("", "", "Choose a password"),
    ],
)
def test_the_password_validators_apply_and_a_refusal_writes_nothing(
    alpha: Initiative, password: str, again: str, problem: str
) -> None:
    _invitation, path = invited(alpha)
    client = client_for(alpha)
    client.get(path)
    before = written()
    response = client.post(ACCEPT, {"new_password1": password, "new_password2": again})
    assert response.status_code == 400
    assert problem in text(response)
    assert written() == before
    assert client.get(ACCEPT).status_code == 200  # still usable


def test_an_existing_account_joins_with_its_own_password(alpha: Initiative, beta: Initiative) -> None:
    existing = organiser(beta, "Joining@example.org")  # organises beta; typed in another case
    device = totp_device(existing)
    invitation, path = invited(alpha, "joining@EXAMPLE.org")
    client = client_for(alpha)
    client.get(path)
    form = client.get(ACCEPT)
    assert "An account with this address already exists" in text(form)
    before = written()
    wrong = client.post(ACCEPT, {"password": "not the password at all"})
    assert wrong.status_code == 400 and "not the password of the account" in text(wrong)
    after = written()
    assert (after[0], after[2], after[3]) == (before[0], before[2], before[3])  # nothing joined
    # A wrong password here is a failed sign-in like any other: audited, and throttled alike.
    assert AuditEvent.objects.filter(action="signin.failed").count() == after[1] - before[1] == 1
    joined = client.post(ACCEPT, {"password": PASSWORD})
    assert (joined.status_code, joined["Location"]) == (303, CODE_STEP)
    # The account has its second factor already: the code step asks for it, then alpha's pages open.
    assert client.get("/manage/exports/").status_code == 302
    assert client.post(CODE_STEP, {"code": totp_code(device)}).status_code == 303
    assert client.get("/manage/exports/").status_code == 200
    assert get_user_model().objects.filter(username__iexact=ADDRESS).count() == 1
    assert OrganiserMembership.objects.filter(user=existing, initiative=alpha).exists()
    event = AuditEvent.objects.get(action="organiser.joined")
    assert event.details == {"invitation_id": invitation.pk, "user_id": existing.pk, "account": "existing"}


def test_an_address_that_became_an_operators_is_refused_when_accepting(alpha: Initiative) -> None:
    _invitation, path = invited(alpha)
    organiser(None, ADDRESS, is_staff=True)
    before = written()
    response = client_for(alpha).post(path, {"new_password1": PASSWORD, "new_password2": PASSWORD})
    assert response.status_code == 403
    assert "operator account" in text(response)
    assert written() == before


# -- the team page ------------------------------------------------------------------------------------------


def test_an_organiser_invites_from_the_team_page(alpha: Initiative) -> None:
    inviter = organiser(alpha, "inviter@example.org")
    client = signed_in(alpha, inviter)
    page = client.get("/manage/organisers/")
    assert page.status_code == 200 and "inviter@example.org" in text(page)
    mail.outbox.clear()
    response = client.post("/manage/organisers/", {"email": ADDRESS})
    assert (response.status_code, response["Location"]) == (303, "/manage/organisers/")
    (message,) = mail.outbox
    assert urlsplit(link_in(message)).hostname == host_of(alpha)
    assert AuditEvent.objects.get(action="organiser.invited").actor == "inviter@example.org"
    assert ADDRESS in text(client.get("/manage/organisers/"))  # open invitation listed

    before = written(), OrganiserInvitation.objects.count()
    for data, problem in [
        ({"email": "nope"}, "valid e-mail address"),
        ({"email": "inviter@example.org"}, "already an organiser"),
        ({}, "Enter the e-mail address"),
    ]:
        refused = client.post("/manage/organisers/", data)
        assert refused.status_code == 400 and problem in text(refused)
    assert (written(), OrganiserInvitation.objects.count()) == before


def test_an_organiser_of_another_initiative_cannot_invite_or_remove_here(
    alpha: Initiative, beta: Initiative
) -> None:
    member = organiser(alpha, "member@example.org")
    outsider = organiser(beta, "outsider@example.org")
    client = signed_in(beta, outsider)
    # Their beta session, and then a session on alpha's site: refused either way.
    alpha_client = client_for(alpha)
    alpha_client.cookies = client.cookies
    before = written(), OrganiserInvitation.objects.count()
    assert alpha_client.post("/manage/organisers/", {"email": ADDRESS}).status_code == 403
    assert alpha_client.post(f"/manage/organisers/{member.pk}/remove/").status_code == 403
    # On its own site, beta's organiser cannot remove alpha's member either: not a member there.
    assert client.post(f"/manage/organisers/{member.pk}/remove/").status_code == 404
    assert (written(), OrganiserInvitation.objects.count()) == before


def test_removing_an_organiser_signs_them_out_at_once(alpha: Initiative, beta: Initiative) -> None:
    remover = organiser(alpha, "remover@example.org")
    removed = organiser(alpha, "removed@example.org")
    OrganiserMembership.objects.create(user=removed, initiative=beta)
    removed_on_alpha, removed_on_beta = signed_in(alpha, removed), signed_in(beta, removed)
    assert removed_on_beta.get("/manage/organisers/").status_code == 200
    client = signed_in(alpha, remover)

    assert client.post(f"/manage/organisers/{remover.pk}/remove/").status_code == 400  # not oneself
    response = client.post(f"/manage/organisers/{removed.pk}/remove/")
    assert (response.status_code, response["Location"]) == (303, "/manage/organisers/")
    assert not OrganiserMembership.objects.filter(user=removed, initiative=alpha).exists()
    for session in (removed_on_alpha, removed_on_beta):  # every session of the account, on every host
        after = session.get("/manage/organisers/")
        assert after.status_code == 302 and after["Location"].startswith(LOGIN)
    assert client.get("/manage/organisers/").status_code == 200  # the remover stays signed in
    event = AuditEvent.objects.get(action="organiser.removed")
    assert event.actor == "remover@example.org"
    assert event.details == {"user_id": removed.pk, "sessions_ended": 2}


# -- password reset -----------------------------------------------------------------------------------------


def _normalised(response: Any) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", response.content.decode())


@pytest.mark.usefixtures("tasks_run_inline")
def test_a_reset_mail_goes_only_to_an_organiser_of_this_initiative_and_the_answer_never_tells(
    alpha: Initiative, beta: Initiative
) -> None:
    member = organiser(alpha, "member@example.org")
    organiser(beta, "elsewhere@example.org")
    organiser(None, "staff@example.org", is_staff=True, is_superuser=True)
    organiser(None, "nobody-organises@example.org")
    pages = {}
    for address in (
        "member@example.org",
        "elsewhere@example.org",
        "staff@example.org",
        "nobody-organises@example.org",
        "unknown@example.org",
    ):
        mail.outbox.clear()
        client = client_for(alpha)
        response = client.post("/manage/password-reset/", {"email": address})
        assert (response.status_code, response["Location"]) == (302, "/manage/password-reset/sent/")
        pages[address] = _normalised(client.get("/manage/password-reset/sent/"))
        assert len(mail.outbox) == (1 if address == "member@example.org" else 0), address
    assert len(set(pages.values())) == 1
    events = AuditEvent.objects.filter(action="organiser.password_reset_sent")
    assert [event.details for event in events] == [{"user_id": member.pk}]


@pytest.mark.usefixtures("tasks_run_inline")
def test_the_reset_link_sets_a_new_password_once_on_its_own_site(alpha: Initiative, beta: Initiative) -> None:
    member = organiser(alpha, "member@example.org")
    OrganiserMembership.objects.create(user=member, initiative=beta)
    old_session = signed_in(alpha, member)
    client_for(alpha).post("/manage/password-reset/", {"email": "MEMBER@example.org"})
    (message,) = mail.outbox
    assert message.to == ["member@example.org"]
    link = link_in(message)
    assert urlsplit(link).hostname == host_of(alpha)
    path = urlsplit(link).path

    # On beta's site the same link is not valid (nothing written), though the account organises beta too.
    before = written()
    on_beta = client_for(beta)
    assert "This link cannot be used" in text(on_beta.get(path))
    refused = on_beta.post(path, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert "This link cannot be used" in text(refused)
    assert written() == before

    client = client_for(alpha)
    set_page = client.get(path)
    assert set_page.status_code == 302  # Django moves the token into the session
    form_path = set_page["Location"]
    weak = client.post(form_path, {"new_password1": "short", "new_password2": "short"})
    assert weak.status_code == 400 and "too short" in text(weak)
    done = client.post(form_path, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert (done.status_code, done["Location"]) == (302, "/manage/password-reset/complete/")
    member.refresh_from_db()
    assert member.check_password(NEW_PASSWORD)
    assert AuditEvent.objects.get(action="organiser.password_reset").details == {"user_id": member.pk}
    # The old session is over (it was opened with the old password), and the link works only once.
    assert old_session.get("/manage/organisers/").status_code == 302
    assert "This link cannot be used" in text(client_for(alpha).get(path, follow=True))
    signed_in(alpha, member, NEW_PASSWORD)


@pytest.mark.usefixtures("tasks_run_inline")
def test_reset_mails_to_one_account_are_limited(alpha: Initiative) -> None:
    organiser(alpha, "member@example.org")
    for _ in range(5):
        assert (
            client_for(alpha).post("/manage/password-reset/", {"email": "member@example.org"}).status_code
            == 302
        )
    assert len(mail.outbox) == 3


def test_the_reset_page_leaves_the_sending_to_a_worker_with_ids_only(alpha: Initiative) -> None:
    """The page answers without talking to the mail server (its timing does not tell whether the address
    is an organiser's); the worker's task gets two ids and makes the link itself."""
    member = organiser(alpha, "member@example.org")
    sent: list[Any] = []
    with before_task_publish_seen(sent):
        response = client_for(alpha).post("/manage/password-reset/", {"email": "member@example.org"})
    assert response.status_code == 302
    assert sent == [("default.password_reset_mail", [alpha.pk, member.pk])]
    assert mail.outbox == []  # nothing sent by the web request
    assert send_password_reset_mail(alpha.pk, member.pk) is True
    (message,) = mail.outbox
    assert message.to == ["member@example.org"] and urlsplit(link_in(message)).hostname == host_of(alpha)


def test_the_reset_task_sends_nothing_to_an_account_that_no_longer_organises(alpha: Initiative) -> None:
    member = organiser(alpha, "member@example.org")
    OrganiserMembership.objects.filter(user=member).delete()
    before = written()
    assert send_password_reset_mail(alpha.pk, member.pk) is False
    assert mail.outbox == [] and written() == before


def test_a_reset_message_that_cannot_go_out_is_not_recorded_as_sent(alpha: Initiative) -> None:
    member = organiser(alpha, "member@example.org")
    smtp = "django.core.mail.backends.smtp.EmailBackend"
    with override_settings(EMAIL_BACKEND=smtp, EMAIL_HOST="127.0.0.1", EMAIL_PORT=free_port()):
        assert send_password_reset_mail(alpha.pk, member.pk) is False
    assert not AuditEvent.objects.filter(action="organiser.password_reset_sent").exists()


def test_a_bad_reset_address_is_a_400_with_the_reason(alpha: Initiative) -> None:
    response = client_for(alpha).post("/manage/password-reset/", {"email": "not an address"})
    assert response.status_code == 400 and "Enter a valid e-mail address" in text(response)
    assert mail.outbox == []


# -- password change ----------------------------------------------------------------------------------------


def test_an_organiser_changes_the_password_and_other_sessions_end(alpha: Initiative) -> None:
    member = organiser(alpha, "member@example.org")
    other_session = signed_in(alpha, member)
    client = signed_in(alpha, member)
    assert client.get("/manage/password/").status_code == 200
    before = written()
    wrong = client.post(
        "/manage/password/",
        {"old_password": "not it at all", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert wrong.status_code == 400 and "incorrect" in text(wrong)
    weak = client.post(
        "/manage/password/", {"old_password": PASSWORD, "new_password1": "abc", "new_password2": "abc"}
    )
    assert weak.status_code == 400 and "too short" in text(weak)
    assert written() == before
    changed = client.post(
        "/manage/password/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert (changed.status_code, changed["Location"]) == (303, "/manage/password/")
    assert "Your password is changed" in text(client.get("/manage/password/"))  # this session stays
    assert other_session.get("/manage/password/").status_code == 302  # the other one is over
    event = AuditEvent.objects.get(action="organiser.password_changed")
    assert event.details == {"user_id": member.pk}
    assert PASSWORD not in str(event.details) and NEW_PASSWORD not in str(event.details)


def test_the_password_page_needs_a_signed_in_organiser(alpha: Initiative) -> None:
    response = client_for(alpha).get("/manage/password/")
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)


# -- through a real SMTP server -----------------------------------------------------------------------------


class Collector:
    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.received = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.original_content)
        self.received.set()
        return "250 OK"


def test_an_invitation_goes_through_a_real_smtp_server_and_its_link_works(alpha: Initiative) -> None:
    collector = Collector()
    port = free_port()
    controller = Controller(collector, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with override_settings(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=port,
            EMAIL_USE_TLS=False,
        ):
            organiser_invite(alpha, email=ADDRESS, actor=COMMAND_LINE_ACTOR)
        assert collector.received.wait(10)
    finally:
        controller.stop()
    (raw,) = collector.messages
    message = message_from_bytes(raw)
    assert message["To"] == ADDRESS
    body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    found = LINK.search(body)
    assert found
    client = client_for(alpha)
    assert client.get(urlsplit(found.group(0)).path).status_code == 302
    response = client.post(ACCEPT, {"new_password1": PASSWORD, "new_password2": PASSWORD})
    assert response.status_code == 303
    assert OrganiserInvitation.objects.get().accepted_at is not None
    assert timezone.now() - OrganiserInvitation.objects.get().accepted_at < datetime.timedelta(minutes=1)  # type: ignore[operator]
