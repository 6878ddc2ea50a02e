"""Forms of the organisers' account pages: accepting an invitation, resetting and changing a password,
inviting another organiser. English only, like the other organiser pages. Django's password forms keep
their checks (AUTH_PASSWORD_VALIDATORS); saving goes through tenants.organisers, which audits."""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.contrib.auth.forms import PasswordChangeForm, PasswordResetForm, SetPasswordForm
from django.core.cache import cache
from kombu.exceptions import OperationalError

from tenants.models import Initiative
from tenants.organisers import ADDRESS_MAX_LENGTH, organiser_accounts_with_address, organiser_password_set
from workers.base import task_send

# At most this many reset messages per account and window: a stranger cannot flood an organiser's inbox.
RESET_MAILS_PER_ACCOUNT = 3
RESET_WINDOW_SECONDS = 60 * 60
RESET_MAIL_TASK = "default.password_reset_mail"

logger = logging.getLogger(__name__)


def _labelled_passwords(form: Any, first: str, second: str) -> None:
    form.error_messages = {**form.error_messages, "password_mismatch": "The two passwords are not the same."}
    form.fields[first].label = "Password"
    form.fields[first].error_messages["required"] = "Choose a password."
    form.fields[second].label = "Password again"
    form.fields[second].error_messages["required"] = "Type the password again."
    form.fields[second].help_text = "The same password once more, to be sure it is the one you meant."


class InvitationNewPasswordForm(SetPasswordForm):
    """A new account's password (or the first of one made at onboarding): Django's validators, compared
    with the account's address as well."""

    def __init__(self, user: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(user, *args, **kwargs)
        _labelled_passwords(self, "new_password1", "new_password2")

    def password(self) -> str:
        return str(self.cleaned_data["new_password1"])


class InvitationExistingPasswordForm(forms.Form):
    """An existing account joins by giving its password (checked by the service)."""

    password = forms.CharField(
        label="Password of your account",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        error_messages={"required": "Enter the password of your account."},
    )

    def __init__(self, user: Any, *args: Any, **kwargs: Any) -> None:
        self.user = user
        super().__init__(*args, **kwargs)

    def password_value(self) -> str:
        return str(self.cleaned_data["password"])


class OrganiserPasswordResetForm(PasswordResetForm):
    """Sends a reset link only to an active organiser of this initiative with that address, at most a
    few times an hour; the page answers the same whatever the address."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["email"]
        field.label = "E-mail address"
        field.error_messages.update(
            {"required": "Enter your e-mail address.", "invalid": "Enter a valid e-mail address."}
        )

    def save(self, *, request: Any, **_ignored: Any) -> None:  # type: ignore[override]
        initiative: Initiative = request.tenant
        for user in organiser_accounts_with_address(initiative, self.cleaned_data["email"]):
            if _reset_mail_allowed(user.pk):
                # Sent by a worker (ids only): this answer takes as long whoever the address is. A broker
                # outage changes nothing in the answer either; asking again sends the message.
                try:
                    task_send(RESET_MAIL_TASK, initiative.pk, user.pk)
                except OperationalError:
                    logger.warning("password reset task for user %s not queued: broker unavailable", user.pk)


def _reset_mail_allowed(user_id: int) -> bool:
    key = f"manage-password-reset:{user_id}"  # an id, no address
    cache.add(key, 0, RESET_WINDOW_SECONDS)
    return int(cache.incr(key)) <= RESET_MAILS_PER_ACCOUNT


class OrganiserSetPasswordForm(SetPasswordForm):
    """The new password after a reset link."""

    def __init__(self, user: Any, *args: Any, **kwargs: Any) -> None:
        self.initiative: Initiative | None = kwargs.pop("initiative", None)
        super().__init__(user, *args, **kwargs)
        _labelled_passwords(self, "new_password1", "new_password2")

    def save(self, commit: bool = True) -> Any:
        assert self.initiative is not None
        organiser_password_set(
            self.user, password=self.cleaned_data["new_password1"], initiative=self.initiative, how="reset"
        )
        return self.user


class OrganiserPasswordChangeForm(PasswordChangeForm):
    """A signed-in organiser's new password, after the current one."""

    def __init__(self, user: Any, *args: Any, **kwargs: Any) -> None:
        self.initiative: Initiative | None = kwargs.pop("initiative", None)
        super().__init__(user, *args, **kwargs)
        self.fields["old_password"].label = "Current password"
        self.fields["old_password"].error_messages["required"] = "Enter your current password."
        _labelled_passwords(self, "new_password1", "new_password2")
        self.fields["new_password1"].label = "New password"
        self.fields["new_password2"].label = "New password again"

    def save(self, commit: bool = True) -> Any:
        assert self.initiative is not None
        organiser_password_set(
            self.user, password=self.cleaned_data["new_password1"], initiative=self.initiative, how="changed"
        )
        return self.user


class InviteOrganiserForm(forms.Form):
    email = forms.CharField(
        label="E-mail address of the organiser to invite",
        max_length=ADDRESS_MAX_LENGTH,
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
        error_messages={
            "required": "Enter the e-mail address to invite.",
            "max_length": f"An e-mail address has at most {ADDRESS_MAX_LENGTH} characters.",
        },
    )
