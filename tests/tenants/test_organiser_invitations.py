"""Inviting organisers (tenants.organisers.organiser_invite): the `invite_organiser` command, the operator
console's organisers page, what is stored (the token's hash only), what is audited (ids, no address),
each refusal writing nothing, a newer invitation revoking the older, and removal from the console ending
the removed account's sessions. Over HTTP with the test client, against PostgreSQL and Redis."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings

from tenants.models import AuditEvent, Initiative, InitiativeState, OrganiserInvitation, OrganiserMembership
from tests.conftest import client_for, host_of
from tests.second_factor import two_step_sign_in

pytestmark = pytest.mark.django_db

ADDRESS = "new.organiser@example.org"
LINK = re.compile(r"(https?://\S+/manage/invitation/([A-Za-z0-9_-]+)/)")


@pytest.fixture(autouse=True)
def _quick_password_hashing() -> Iterator[None]:
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


def invite(*args: str) -> tuple[dict[str, object], str | None]:
    out = io.StringIO()
    error = None
    try:
        call_command("invite_organiser", *args, "--json", stdout=out)
    except CommandError as refusal:
        error = str(refusal)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, lines
    return json.loads(lines[0]), error


def link_of(message: mail.EmailMessage) -> tuple[str, str]:
    found = LINK.search(str(message.body))
    assert found, message.body
    return found.group(1), found.group(2)


def written() -> tuple[int, int, int, int]:
    """What a refusal must leave as it was."""
    return (
        OrganiserInvitation.objects.count(),
        AuditEvent.objects.count(),
        OrganiserMembership.objects.count(),
        get_user_model().objects.count(),
    )


def test_the_command_sends_a_link_on_the_initiatives_site_and_keeps_only_the_tokens_hash(
    alpha: Initiative,
) -> None:
    result, error = invite("--initiative", "alpha", "--email", "New.Organiser@EXAMPLE.org")
    assert error is None
    invitation = OrganiserInvitation.objects.get()
    assert result == {
        "initiative": "alpha",
        "invitation": invitation.pk,
        "sent": True,
        "expires_at": result["expires_at"],
    }
    (message,) = mail.outbox
    assert message.to == ["New.Organiser@example.org"]  # the domain in lower case, as Django stores it
    link, token = link_of(message)
    assert urlsplit(link).hostname == host_of(alpha)
    assert token not in json.dumps(result)  # the operator never sees the token
    assert invitation.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {str(value) for value in OrganiserInvitation.objects.values().get().values()}
    hours = (invitation.expires_at - invitation.created_at).total_seconds() / 3600
    assert round(hours) == 72
    (event,) = AuditEvent.objects.filter(action="organiser.invited")
    assert event.actor == "command-line" and event.initiative_slug == "alpha"
    assert event.details["invitation_id"] == invitation.pk
    assert "example.org" not in json.dumps(event.details)  # no address in the audit log


@pytest.mark.parametrize(
    ("case", "arguments", "message"),
    [
        ("unknown initiative", ["--initiative", "nowhere", "--email", ADDRESS], "No initiative"),
        ("bad address", ["--initiative", "alpha", "--email", "not an address"], "valid e-mail address"),
        ("empty address", ["--initiative", "alpha", "--email", "  "], "Enter the e-mail address"),
        ("too long", ["--initiative", "alpha", "--email", "a" * 250 + "@example.org"], "at most 254"),
        ("staff address", ["--initiative", "alpha", "--email", "OPERATOR@example.org"], "operator account"),
        (
            "present organiser",
            ["--initiative", "alpha", "--email", "member@example.org"],
            "already an organiser",
        ),
        ("destroyed initiative", ["--initiative", "beta", "--email", ADDRESS], "takes no new organisers"),
    ],
)
def test_each_refusal_names_the_problem_and_writes_nothing(
    alpha: Initiative, beta: Initiative, case: str, arguments: list[str], message: str
) -> None:
    users = get_user_model().objects
    users.create_user("operator@example.org", "operator@example.org", "x" * 20, is_staff=True)
    member = users.create_user("member@example.org", "member@example.org", "x" * 20)
    OrganiserMembership.objects.create(user=member, initiative=alpha)
    Initiative.objects.filter(pk=beta.pk).update(state=InitiativeState.DESTROYED)
    before = written()
    result, error = invite(*arguments)
    assert error is not None and message in error, case
    assert result["error"] == error
    assert written() == before, case
    assert mail.outbox == []


def test_a_message_that_cannot_be_sent_leaves_no_invitation(alpha: Initiative) -> None:
    before = written()
    # A real SMTP client, to a loopback port where nothing listens.
    with override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="127.0.0.1", EMAIL_PORT=1
    ):
        _result, error = invite("--initiative", "alpha", "--email", ADDRESS)
    assert error is not None and "could not be sent" in error
    assert written() == before


def test_a_new_invitation_to_the_same_address_revokes_the_earlier_one(alpha: Initiative) -> None:
    invite("--initiative", "alpha", "--email", ADDRESS)
    invite("--initiative", "alpha", "--email", ADDRESS.upper().replace("EXAMPLE.ORG", "example.org"))
    first, second = OrganiserInvitation.objects.order_by("pk")
    assert first.revoked_at is not None and second.revoked_at is None
    event = AuditEvent.objects.filter(action="organiser.invited").order_by("pk").last()
    assert event is not None and event.details["revoked_invitation_ids"] == [first.pk]
    old_link, _ = link_of(mail.outbox[0])
    new_link, _ = link_of(mail.outbox[1])
    client = client_for(alpha)
    assert client.get(urlsplit(old_link).path).status_code == 410
    assert client.get(urlsplit(new_link).path).status_code == 302


# -- the operator console -----------------------------------------------------------------------------------


def test_an_operator_invites_from_the_initiatives_page(operator: Client, alpha: Initiative) -> None:
    change = operator.get(f"/operator/tenants/initiative/{alpha.pk}/change/")
    page = f"/operator/tenants/initiative/{alpha.pk}/organisers/"
    assert f'href="{page}">Invite an organiser</a>' in change.content.decode()
    assert operator.get(page).status_code == 200
    response = operator.post(page, {"email": ADDRESS})
    assert (response.status_code, response["Location"]) == (302, page)
    (message,) = mail.outbox
    assert message.to == [ADDRESS]
    assert urlsplit(link_of(message)[0]).hostname == host_of(alpha)
    assert AuditEvent.objects.get(action="organiser.invited").actor == "op"
    assert ADDRESS in operator.get(page).content.decode()  # listed as open


def test_the_console_refuses_a_staff_address_and_writes_nothing(operator: Client, alpha: Initiative) -> None:
    before = written()
    response = operator.post(f"/operator/tenants/initiative/{alpha.pk}/organisers/", {"email": "OP"})
    assert response.status_code == 400
    assert "valid e-mail address" in response.content.decode()
    get_user_model().objects.filter(username="op").update(email="op@example.org")
    response = operator.post(
        f"/operator/tenants/initiative/{alpha.pk}/organisers/", {"email": "op@example.org"}
    )
    assert response.status_code == 400
    assert "operator account" in response.content.decode()
    assert written() == before
    assert mail.outbox == []


def test_only_operator_staff_reach_the_organisers_page(alpha: Initiative) -> None:
    user = get_user_model().objects.create_user("someone@example.org", password="x" * 20)
    OrganiserMembership.objects.create(user=user, initiative=alpha)
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    response = client.post(f"/operator/tenants/initiative/{alpha.pk}/organisers/", {"email": ADDRESS})
    assert response.status_code == 302 and "/operator/login/" in response["Location"]
    assert OrganiserInvitation.objects.count() == 0


def test_an_operator_removes_an_organiser_and_ends_their_sessions(
    operator: Client, alpha: Initiative
) -> None:
    password = "a long organiser passphrase 42"
    user = get_user_model().objects.create_user("leaving@example.org", "leaving@example.org", password)
    OrganiserMembership.objects.create(user=user, initiative=alpha)
    organiser = client_for(alpha)
    assert two_step_sign_in(organiser, "/manage/login/", user, password).status_code == 303
    assert organiser.get("/manage/organisers/").status_code == 200

    response = operator.post(f"/operator/tenants/initiative/{alpha.pk}/organisers/{user.pk}/remove/")
    assert response.status_code == 302
    assert not OrganiserMembership.objects.filter(user=user).exists()
    event = AuditEvent.objects.get(action="organiser.removed")
    assert event.details == {"user_id": user.pk, "sessions_ended": 1}
    after = organiser.get("/manage/organisers/")
    assert after.status_code == 302 and after["Location"].startswith("/manage/login/")  # signed out
    # Removing again: no such organiser, nothing written.
    before = written()
    again = operator.post(f"/operator/tenants/initiative/{alpha.pk}/organisers/{user.pk}/remove/")
    assert again.status_code == 404
    assert written() == before
