"""Telling account holders that their means of signing in changed (OWASP ASVS 2.2.3): a new password, a
second factor set up or reset. The message goes to the account's own address, from a worker (the task
carries the user's id and the kind of change, nothing else), after the change is committed. Nothing in
it is a link to follow: it says what happened and what to do if it was not them."""

from __future__ import annotations

import enum
import functools
import logging
import smtplib

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from workers.base import task_send

logger = logging.getLogger(__name__)

NOTICE_TASK = "default.account_change_notice"


class AccountChange(enum.IntEnum):
    PASSWORD = 1
    SECOND_FACTOR_ENROLLED = 2
    SECOND_FACTOR_RESET = 3


WHAT_CHANGED = {
    AccountChange.PASSWORD: "The password was changed",
    AccountChange.SECOND_FACTOR_ENROLLED: "A new authenticator app (second factor) was set up",
    AccountChange.SECOND_FACTOR_RESET: "The second factor was reset by an operator",
}


def account_change_notify(user_id: int, change: AccountChange) -> None:
    """Queue the notice once the current transaction commits (never for a change that rolled back)."""
    transaction.on_commit(functools.partial(task_send, NOTICE_TASK, user_id, int(change)), robust=True)


def account_change_notice_send(user_id: int, change: int) -> bool:
    """Send the notice; False when there is no one to tell (no account, no address) or the message could
    not go out (logged by id)."""
    user = get_user_model().objects.filter(pk=user_id).first()
    try:
        what = WHAT_CHANGED[AccountChange(change)]
    except ValueError:
        return False
    address = (user.email or "").strip() if user is not None else ""
    if user is None or "@" not in address:
        return False
    context = {
        "what": what,
        "username": user.get_username(),
        "platform": settings.PLATFORM_DOMAIN,
        "when": timezone.localtime(),
    }
    body = render_to_string("accounts/change_notice.txt", context)
    try:
        EmailMessage(f"{what} on your account", body, to=[address]).send(fail_silently=False)
    except (smtplib.SMTPException, OSError) as error:
        logger.warning("account change notice for user %s not sent: %s", user_id, type(error).__name__)
        return False
    return True
