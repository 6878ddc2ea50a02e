"""The steps of the second factor, shared by the operator console (tenants/admin.py) and the organisers'
pages (exports/views.py); each site subclasses `SecondFactorSite` with its templates, its site name and
what it does once someone is signed in. Thin: the work is in tenants/second_factor.py.

- the code step (`code_view`): a TOTP code or a backup code, after the password;
- enrolment (`enrol_view`): an account without a device gets a secret (QR code and text), confirms it
  with a current code, is signed in, and sees its backup codes once;
- re-verification (`reverification_response`): before a sensitive POST, when the last code is older
  than SECOND_FACTOR_REVERIFY_SECONDS, the answer is a page asking for a code that sends the same form
  again with it.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers

from tenants.models import Initiative
from tenants.second_factor import (
    AlreadyEnrolledError,
    PendingSignIn,
    audit_backup_code_used,
    audit_second_factor_failed,
    code_check,
    enrolment_key,
    is_verified,
    pending_failure_count,
    pending_sign_in,
    second_factor_enrol,
    sign_in_complete,
    totp_provisioning,
    verified_recently,
    verified_stamp,
)
from tenants.sessions import see_other

# The field of the re-verification prompt; every other field of the form it interrupts is sent again.
REVERIFY_FIELD = "second_factor_code"
THROTTLED_RETRY_SECONDS = 60


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        strip=True,
        help_text="The 6 digits your authenticator app shows, or one of your backup codes.",
        error_messages={"required": "Enter a code."},
    )


class ReverifyForm(forms.Form):
    second_factor_code = CodeForm.base_fields["code"]


class EnrolForm(forms.Form):
    code = forms.CharField(
        label="Code from your authenticator app",
        strip=True,
        error_messages={"required": "Enter the 6-digit code."},
    )


WRONG_CODE = "That code is not valid. Type the current code, or an unused backup code."
WRONG_ENROL_CODE = "That code does not match. Type the code your app shows now for this account."
THROTTLED = "Too many wrong codes: wait a minute, then try again."


def _no_store(response: HttpResponse) -> HttpResponse:
    add_never_cache_headers(response)  # private, no-store: these pages carry secrets or codes
    return response


class SecondFactorSite:
    """One site's second-factor pages. Subclasses set the templates and the hooks."""

    code_template = ""
    enrol_template = ""
    backup_codes_template = ""
    reverify_template = ""

    def site(self, request: HttpRequest) -> str:
        raise NotImplementedError

    def initiative(self, request: HttpRequest) -> Initiative | None:
        return None

    def login_url(self) -> str:
        raise NotImplementedError

    def code_url(self) -> str:
        raise NotImplementedError

    def enrol_url(self) -> str:
        raise NotImplementedError

    def context(self, request: HttpRequest, **extra: Any) -> dict[str, Any]:
        return extra

    def signed_in(self, request: HttpRequest) -> None:
        """Called right after both factors signed someone in (the session key is new by then)."""

    # -- the steps ------------------------------------------------------------------------------------------

    def _pending(self, request: HttpRequest) -> PendingSignIn | None:
        return pending_sign_in(request, site=self.site(request))

    def _failed(self, request: HttpRequest, user: Any, stage: str) -> None:
        audit_second_factor_failed(
            user,
            actor=user.get_username(),
            initiative=self.initiative(request),
            site=self.site(request),
            stage=stage,
        )

    def _render(self, request: HttpRequest, template: str, status: int = 200, **extra: Any) -> HttpResponse:
        context = self.context(
            request,
            login_url=self.login_url(),
            reverify_minutes=max(1, settings.SECOND_FACTOR_REVERIFY_SECONDS // 60),
            **extra,
        )
        response = render(request, template, context, status=status)
        return _no_store(response)

    def code_view(self, request: HttpRequest) -> HttpResponse:
        pending = self._pending(request)
        if pending is None:
            return see_other(self.login_url())
        if pending.enrolling:
            return see_other(self.enrol_url())
        form = CodeForm(request.POST if request.method == "POST" else None)
        if request.method != "POST":
            return self._render(request, self.code_template, form=form, form_action=self.code_url())
        if not form.is_valid():
            return self._render(request, self.code_template, 400, form=form, form_action=self.code_url())
        checked = code_check(pending.user, form.cleaned_data["code"])
        if checked.device is None:
            self._failed(request, pending.user, "sign-in")
            if not pending_failure_count(request):
                return see_other(self.login_url())  # used up: start again with the password
            if checked.throttled:
                form.add_error("code", THROTTLED)
                response = self._render(
                    request, self.code_template, 429, form=form, form_action=self.code_url()
                )
                response["Retry-After"] = str(THROTTLED_RETRY_SECONDS)
                return response
            form.add_error("code", WRONG_CODE)
            return self._render(request, self.code_template, 400, form=form, form_action=self.code_url())
        next_url = pending.next_url
        sign_in_complete(request, pending, checked.device)
        if checked.kind == "backup":
            audit_backup_code_used(
                pending.user,
                checked.device,
                actor=pending.user.get_username(),
                initiative=self.initiative(request),
                site=self.site(request),
            )
        self.signed_in(request)
        return see_other(next_url)

    def enrol_view(self, request: HttpRequest) -> HttpResponse:
        pending = self._pending(request)
        if pending is None:
            return see_other(self.login_url())
        if not pending.enrolling:
            return see_other(self.code_url())
        provisioning = totp_provisioning(pending.user, enrolment_key(request))
        form = EnrolForm(request.POST if request.method == "POST" else None)

        def page(status: int = 200) -> HttpResponse:
            return self._render(
                request,
                self.enrol_template,
                status,
                form=form,
                form_action=self.enrol_url(),
                provisioning=provisioning,
                account=pending.user.get_username(),
            )

        if request.method != "POST":
            return page()
        if not form.is_valid():
            return page(400)
        try:
            enrolment = second_factor_enrol(
                pending.user,
                key=enrolment_key(request),
                code=form.cleaned_data["code"],
                actor=pending.user.get_username(),
                initiative=self.initiative(request),
                site=self.site(request),
            )
        except AlreadyEnrolledError:
            return see_other(self.code_url())  # enrolled meanwhile: sign in with that device
        if enrolment is None:
            if not pending_failure_count(request):
                return see_other(self.login_url())
            form.add_error("code", WRONG_ENROL_CODE)
            return page(400)
        next_url = pending.next_url
        sign_in_complete(request, pending, enrolment.device)
        self.signed_in(request)
        # Shown once, in this answer only: never stored in the session nor sent again.
        return self._render(
            request, self.backup_codes_template, backup_codes=enrolment.backup_codes, next_url=next_url
        )

    # -- re-verification ------------------------------------------------------------------------------------

    def reverification_response(self, request: HttpRequest) -> HttpResponse | None:
        """None when the sensitive POST may go on: the second factor was typed recently, or the code
        sent with this request is good. Else the page that asks for it (400 after a wrong code)."""
        if verified_recently(request) or not is_verified(request):
            # Not verified at all is the guards' business (they answer before this is asked).
            return None
        user = cast(User, request.user)  # verified, so signed in
        typed = REVERIFY_FIELD in request.POST
        form = ReverifyForm(request.POST if typed else None)
        status = 200
        if typed and form.is_valid():
            checked = code_check(user, form.cleaned_data[REVERIFY_FIELD])
            if checked.device is not None:
                verified_stamp(request)
                if checked.kind == "backup":
                    audit_backup_code_used(
                        user,
                        checked.device,
                        actor=user.get_username(),
                        initiative=self.initiative(request),
                        site=self.site(request),
                    )
                return None
            self._failed(request, user, "re-verification")
            form.add_error(REVERIFY_FIELD, THROTTLED if checked.throttled else WRONG_CODE)
            status = 429 if checked.throttled else 400
        elif typed:
            status = 400
        resent = [
            (name, value)
            for name, values in request.POST.lists()
            if name not in ("csrfmiddlewaretoken", REVERIFY_FIELD)
            for value in values
        ]
        response = self._render(
            request,
            self.reverify_template,
            status,
            form=form,
            form_action=request.get_full_path(),
            resent=resent,
        )
        if status == 429:
            response["Retry-After"] = str(THROTTLED_RETRY_SECONDS)
        return response
