"""Account holders hear of changes to their means of signing in (ASVS 2.2.3): a new password (whichever
way), a second factor set up or reset by an operator. The notice goes by a worker's task that carries
ids only, after the change commits, to the account's own address, and never holds a secret."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core import mail
from django.db import transaction
from django.test import override_settings
from django.utils.crypto import get_random_string

from tenants.account_notices import AccountChange
from tenants.models import Initiative, OrganiserMembership
from tenants.second_factor import second_factor_enrol, second_factor_reset
from tenants.tasks import send_account_change_notice
from tests.conftest import before_task_publish_seen, client_for
from tests.processes import free_port
from tests.second_factor import totp_device, two_step_sign_in

pytestmark = pytest.mark.django_db
inline = pytest.mark.usefixtures("tasks_run_inline")

PASSWORD = "an organiser's long passphrase"
NEW_PASSWORD = "another long passphrase, new"


def _organiser(initiative: Initiative, address: str = "member@example.org") -> User:
    user = get_user_model().objects.create_user(address, address, PASSWORD)
    OrganiserMembership.objects.create(user=user, initiative=initiative)
    return user


@inline
def test_a_password_change_over_http_is_told_to_the_account_holder(
    alpha: Initiative, django_capture_on_commit_callbacks: Any
) -> None:
    user = _organiser(alpha)
    client = client_for(alpha)
    assert two_step_sign_in(client, "/manage/login/", user, PASSWORD).status_code == 303
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        changed = client.post(
            "/manage/password/",
            {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        )
    assert changed.status_code == 303
    (notice,) = mail.outbox
    assert notice.to == ["member@example.org"]
    assert notice.subject == "The password was changed on your account"
    assert "If it was not you" in notice.body and "member@example.org" in notice.body
    assert NEW_PASSWORD not in notice.body and PASSWORD not in notice.body


def test_the_task_carries_the_account_id_and_the_kind_of_change_only(
    alpha: Initiative, django_capture_on_commit_callbacks: Any
) -> None:
    user = _organiser(alpha)
    sent: list[Any] = []
    with before_task_publish_seen(sent), django_capture_on_commit_callbacks(execute=True):
        user.set_password(NEW_PASSWORD)
        user.save()
    assert sent == [("default.account_change_notice", [user.pk, int(AccountChange.PASSWORD)])]
    assert mail.outbox == []  # the worker sends it, not the process that made the change


@inline
def test_second_factor_enrolment_and_reset_are_told(
    alpha: Initiative, django_capture_on_commit_callbacks: Any
) -> None:
    from django_otp.oath import TOTP
    from django_otp.util import random_hex

    user = _organiser(alpha)
    key = random_hex(20)
    with django_capture_on_commit_callbacks(execute=True):
        enrolment = second_factor_enrol(
            user,
            key=key,
            code=f"{TOTP(bytes.fromhex(key)).token():06d}",
            actor=user.username,
            initiative=alpha,
            site=alpha.schema_name,
        )
    assert enrolment is not None
    with django_capture_on_commit_callbacks(execute=True):
        second_factor_reset(user, actor="operator")
    subjects = [message.subject for message in mail.outbox]
    assert subjects == [
        "A new authenticator app (second factor) was set up on your account",
        "The second factor was reset by an operator on your account",
    ]
    assert all(message.to == ["member@example.org"] for message in mail.outbox)
    body = "".join(str(message.body) for message in mail.outbox)
    assert key not in body and not any(code in body for code in enrolment.backup_codes)


def test_a_change_that_rolled_back_is_not_told(
    alpha: Initiative, django_capture_on_commit_callbacks: Any
) -> None:
    user = _organiser(alpha)
    totp_device(user)
    capture = django_capture_on_commit_callbacks(execute=True)
    with capture as callbacks, pytest.raises(RuntimeError), transaction.atomic():
        user.set_password(NEW_PASSWORD)
        user.save()
        raise RuntimeError("something later in the same transaction failed")
    assert callbacks == [] and mail.outbox == []


def test_no_address_unknown_account_or_unknown_change_sends_nothing(alpha: Initiative) -> None:
    nameless = get_user_model().objects.create_user(get_random_string(12), "", PASSWORD)
    assert send_account_change_notice(nameless.pk, int(AccountChange.PASSWORD)) is False
    assert send_account_change_notice(10**9, int(AccountChange.PASSWORD)) is False
    user = _organiser(alpha)
    assert send_account_change_notice(user.pk, 99) is False
    assert mail.outbox == []


def test_a_notice_that_cannot_go_out_is_reported_not_raised(alpha: Initiative) -> None:
    user = _organiser(alpha)
    smtp = "django.core.mail.backends.smtp.EmailBackend"
    with override_settings(EMAIL_BACKEND=smtp, EMAIL_HOST="127.0.0.1", EMAIL_PORT=free_port()):
        assert send_account_change_notice(user.pk, int(AccountChange.PASSWORD)) is False
