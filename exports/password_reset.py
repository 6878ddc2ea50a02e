"""The password-reset message, sent by a worker (exports.tasks.send_password_reset_mail): the page that
asks for it answers at once whether or not the address is an organiser's, and sending only from the
worker keeps the SMTP round trip out of that answer's timing. The task carries two ids; the token and
the link are made here, in the worker, and exist only in the message."""

from __future__ import annotations

import logging
import smtplib

from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from exports.selectors import organiser_of
from tenants.audit import audit_record
from tenants.models import Initiative
from tenants.urls import initiative_site_url

logger = logging.getLogger(__name__)

# Who asks for a reset is not known (the page is for people who cannot sign in).
RESET_ACTOR = "password-reset-page"
SUBJECT_TEMPLATE = "manage/password_reset_subject.txt"
BODY_TEMPLATE = "manage/password_reset_email.txt"


class InitiativeResetTokens(PasswordResetTokenGenerator):
    """Django's reset tokens (bound to the account's password and last sign-in, so used once), salted
    with the initiative: a link works only on the site of the initiative it was asked for, even for an
    account that organises several."""

    def __init__(self, initiative: Initiative) -> None:
        super().__init__()
        self.key_salt = f"eci.manage.password-reset.{initiative.pk}"


def password_reset_minutes() -> int:
    from django.conf import settings

    return int(settings.PASSWORD_RESET_TIMEOUT) // 60


def password_reset_mail_send(initiative_id: int, user_id: int) -> bool:
    """Send the reset link to an organiser of the initiative; False (nothing sent) if the account is no
    longer an active organiser there, or the message could not go out (logged by ids; asking again
    sends a new one)."""
    initiative = Initiative.objects.filter(pk=initiative_id).first()
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if (
        initiative is None
        or user is None
        or user.is_staff
        or user.is_superuser
        or not organiser_of(user.pk, initiative.pk)
    ):
        return False
    token = InitiativeResetTokens(initiative).make_token(user)
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    path = reverse("manage-password-reset-confirm", kwargs={"uidb64": uid, "token": token})
    # On the initiative's own site (its primary domain).
    context = {
        "initiative": initiative,
        "title": initiative.text("title", "en"),
        "link": initiative_site_url(initiative).rstrip("/") + path,
        "user": user,
        "minutes": password_reset_minutes(),
    }
    subject = "".join(render_to_string(SUBJECT_TEMPLATE, context).splitlines())
    body = render_to_string(BODY_TEMPLATE, context)
    try:
        EmailMessage(subject, body, to=[user.email or user.get_username()]).send(fail_silently=False)
    except (smtplib.SMTPException, OSError) as error:
        logger.warning("password reset message for user %s not sent: %s", user.pk, type(error).__name__)
        return False
    audit_record(
        actor=RESET_ACTOR, action="organiser.password_reset_sent", initiative=initiative, user_id=user.pk
    )
    return True
