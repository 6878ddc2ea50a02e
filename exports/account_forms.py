"""Forms of the organisers' account pages: accepting an invitation, resetting and changing a password,
inviting another organiser. English only, like the other organiser pages. Django's password forms keep
their checks (AUTH_PASSWORD_VALIDATORS); saving goes through tenants.organisers, which audits."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import PasswordChangeForm, PasswordResetForm, SetPasswordForm
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.cache import cache
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from tenants.audit import audit_record
from tenants.models import Initiative
from tenants.organisers import ADDRESS_MAX_LENGTH, organiser_accounts_with_address, organiser_password_set
from tenants.urls import initiative_site_url

# At most this many reset messages per account and window: a stranger cannot flood an organiser's inbox.
RESET_MAILS_PER_ACCOUNT = 3
RESET_WINDOW_SECONDS = 60 * 60
# Who asks for a reset is not known (the page is for people who cannot sign in).
RESET_ACTOR = "password-reset-page"


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

    def save(  # type: ignore[override]
        self,
        *,
        request: Any,
        token_generator: PasswordResetTokenGenerator,
        subject_template_name: str,
        email_template_name: str,
        **_ignored: Any,
    ) -> None:
        initiative: Initiative = request.tenant
        for user in organiser_accounts_with_address(initiative, self.cleaned_data["email"]):
            if not _reset_mail_allowed(user.pk):
                continue
            uid = urlsafe_base64_encode(force_bytes(user.pk))
            path = reverse(
                "manage-password-reset-confirm",
                kwargs={"uidb64": uid, "token": token_generator.make_token(user)},
            )
            # On the initiative's own site (its primary domain), whatever Host the request came with.
            context = {
                "initiative": initiative,
                "title": initiative.text("title", "en"),
                "link": initiative_site_url(initiative).rstrip("/") + path,
                "user": user,
                "minutes": _reset_minutes(),
            }
            # Django's send_mail logs (by user id) and swallows a failure: the answer stays the same.
            self.send_mail(
                subject_template_name, email_template_name, context, None, user.email or user.username
            )
            audit_record(
                actor=RESET_ACTOR,
                action="organiser.password_reset_sent",
                initiative=initiative,
                user_id=user.pk,
            )


class InitiativeResetTokens(PasswordResetTokenGenerator):
    """Django's reset tokens (bound to the account's password and last sign-in, so used once), salted
    with the initiative: a link works only on the site of the initiative it was asked for, even for an
    account that organises several."""

    def __init__(self, initiative: Initiative) -> None:
        super().__init__()
        self.key_salt = f"eci.manage.password-reset.{initiative.pk}"


def _reset_minutes() -> int:
    from django.conf import settings

    return int(settings.PASSWORD_RESET_TIMEOUT) // 60


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
