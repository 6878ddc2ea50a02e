"""The organisers' account pages on an initiative's site, under /manage/: accepting an invitation, the
password reset by e-mail (Django's views, limited to this initiative's organisers) and the password change.
Thin: parse, call one service (tenants.organisers), render.

An invitation link answers 404 when its token is unknown here (another initiative's token included) and
410 once used, revoked or expired; neither writes anything. A valid link's token moves into the session
and the page continues at /manage/invitation/accept/, as Django's reset confirmation does, so that the
token does not stay in the address bar, the history or a Referer."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse, reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from exports.access import (
    current_initiative,
    manage_context,
    manage_language_activate,
)
from exports.account_forms import (
    InvitationExistingPasswordForm,
    InvitationNewPasswordForm,
    OrganiserPasswordChangeForm,
    OrganiserPasswordResetForm,
    OrganiserSetPasswordForm,
)
from exports.password_reset import InitiativeResetTokens
from exports.selectors import organiser_of
from tenants.organisers import (
    InvitationGoneError,
    OperatorAddressError,
    OrganiserError,
    invitation_account,
    invitation_for_token,
    invitation_needs_new_password,
    invitation_problem,
    organiser_invitation_accept,
)
from tenants.second_factor import pending_start
from tenants.sessions import see_other
from tenants.throttle import signin_attempt_register, signin_refusal_report, signin_succeeded

INVITATION_SESSION_KEY = "manage_invitation_token"
# The address the page continues at once the token is in the session (not a token: too short for one).
INVITATION_CONTINUE = "accept"

UNKNOWN_INVITATION = (
    "This invitation link is not valid on this site. Open the link exactly as it is in the message; an "
    "invitation works only on the site of the initiative it is for."
)


def _gone(request: HttpRequest, message: str, status: int) -> HttpResponse:
    return render(
        request, "manage/invitation_gone.html", manage_context(request, message=message), status=status
    )


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def invitation_page(request: HttpRequest, token: str) -> HttpResponse:
    """GET /manage/invitation/<token>/: the form to join (a new password, or the existing account's);
    POST: join, then 303 to the sign-in page."""
    manage_language_activate()
    initiative = current_initiative(request)
    from_session = token == INVITATION_CONTINUE
    if from_session:
        token = str(request.session.get(INVITATION_SESSION_KEY, ""))
    invitation = invitation_for_token(initiative, token)
    if invitation is None:
        return _gone(request, UNKNOWN_INVITATION, 404)
    problem = invitation_problem(invitation)
    if problem:
        return _gone(request, problem, 410)
    try:
        account = invitation_account(invitation)
    except OrganiserError as error:
        return _gone(request, str(error), error.status)
    if request.method != "POST" and not from_session:
        request.session[INVITATION_SESSION_KEY] = token
        return HttpResponseRedirect(reverse("manage-invitation", args=[INVITATION_CONTINUE]))

    new_password = invitation_needs_new_password(account)
    user = account or get_user_model()(username=invitation.email, email=invitation.email)
    form: Any = (InvitationNewPasswordForm if new_password else InvitationExistingPasswordForm)(
        user, request.POST if request.method == "POST" else None
    )
    context = manage_context(request, form=form, invitation=invitation, new_password=new_password)
    if request.method != "POST":
        return render(request, "manage/invitation.html", context)
    # An existing account's password is guessed here no more often than on the sign-in page.
    if not new_password:
        attempt = signin_attempt_register(request, invitation.email)
        if not attempt.allowed:
            response = render(request, "manage/invitation.html", {**context, "blocked": True}, status=429)
            response["Retry-After"] = str(attempt.retry_after)
            return response
    if form.is_valid():
        password = form.password() if new_password else form.password_value()
        try:
            account = organiser_invitation_accept(invitation, password=password)
        except (InvitationGoneError, OperatorAddressError) as error:
            return _gone(request, str(error), error.status)
        except OrganiserError as error:
            for message in error.messages:
                form.add_error(error.field if error.field in form.fields else None, message)
        else:
            request.session.pop(INVITATION_SESSION_KEY, None)
            if not new_password:
                signin_succeeded(request, invitation.email)
            # The password was just given here: the second factor follows at once (set up on a new
            # account, asked for on one that has it), as after the sign-in page's password.
            pending_start(request, account, site=initiative.schema_name, next_url=reverse("manage-dashboard"))
            messages.success(request, "You are now an organiser of this initiative.")
            return see_other(reverse("manage-login-code"))
    if not new_password:
        signin_refusal_report(request, invitation.email)  # checked outside authenticate()
    return render(request, "manage/invitation.html", context, status=400)


class _ManagePage:
    """English, with the initiative in the context, like the other organiser pages."""

    request: HttpRequest

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        manage_language_activate()
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), **manage_context(self.request)}  # type: ignore[misc]


class PasswordResetView(_ManagePage, auth_views.PasswordResetView):
    """GET/POST /manage/password-reset/: the same answer for any address; only an organiser of this
    initiative gets a message, with a link on this initiative's site."""

    form_class = OrganiserPasswordResetForm
    template_name = "manage/password_reset_form.html"
    success_url = reverse_lazy("manage-password-reset-sent")

    def form_invalid(self, form: Any) -> HttpResponse:
        response = super().form_invalid(form)
        response.status_code = 400
        return response


class PasswordResetSentView(_ManagePage, auth_views.PasswordResetDoneView):
    template_name = "manage/password_reset_sent.html"


class PasswordResetConfirmView(_ManagePage, auth_views.PasswordResetConfirmView):
    """The link of the message: a new password, for an organiser of this initiative only; the token is
    salted with the initiative, so a link used on another initiative's site is not valid there."""

    form_class = OrganiserSetPasswordForm
    template_name = "manage/password_reset_confirm.html"
    success_url = reverse_lazy("manage-password-reset-complete")

    @property
    def token_generator(self) -> InitiativeResetTokens:
        return InitiativeResetTokens(current_initiative(self.request))

    def get_user(self, uidb64: str) -> Any:
        user = super().get_user(uidb64)
        if user is None or user.is_staff or user.is_superuser:
            return None
        return user if organiser_of(user.pk, current_initiative(self.request).pk) else None

    def get_form_kwargs(self) -> dict[str, Any]:
        return {**super().get_form_kwargs(), "initiative": current_initiative(self.request)}

    def form_invalid(self, form: Any) -> HttpResponse:
        response = super().form_invalid(form)
        response.status_code = 400
        return response


class PasswordResetCompleteView(_ManagePage, auth_views.PasswordResetCompleteView):
    template_name = "manage/password_reset_complete.html"


class PasswordChangeView(_ManagePage, auth_views.PasswordChangeView):
    """GET/POST /manage/password/ (behind organiser_required in the URL conf): the current password,
    then the new one twice. This session stays signed in; every other session of the account ends."""

    form_class = OrganiserPasswordChangeForm
    template_name = "manage/password_change.html"
    success_url = reverse_lazy("manage-password")

    def get_form_kwargs(self) -> dict[str, Any]:
        return {**super().get_form_kwargs(), "initiative": current_initiative(self.request)}

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        messages.success(self.request, "Your password is changed. Your other sessions are signed out.")
        response.status_code = 303
        return response

    def form_invalid(self, form: Any) -> HttpResponse:
        response = super().form_invalid(form)
        response.status_code = 400
        return response
