"""The operator console's second factor: the password step hands over to the code step or enrolment
(`/operator/login/code/`, `/operator/login/enrol/`), a certificate confirmation asks for a recent code,
and an operator resets someone's second factor from the user's page (`/operator/auth/user/<id>/
second-factor/`). The steps themselves are shared with the organisers' pages
(tenants/second_factor_views.py)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME, get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django_otp import user_has_device

from tenants.second_factor import OPERATOR_SITE, pending_start, second_factor_reset
from tenants.second_factor_views import SecondFactorSite
from tenants.throttle import (
    retry_after_text,
    signin_attempt_register,
    signin_refusal_report,
    signin_succeeded,
)


class OperatorSecondFactor(SecondFactorSite):
    code_template = "operator/second_factor_code.html"
    enrol_template = "operator/second_factor_enrol.html"
    backup_codes_template = "operator/second_factor_backup_codes.html"
    reverify_template = "operator/second_factor_reverify.html"

    def __init__(self, admin_site: admin.AdminSite) -> None:
        self.admin_site = admin_site

    def site(self, request: HttpRequest) -> str:
        return OPERATOR_SITE

    def login_url(self) -> str:
        return reverse(f"{self.admin_site.name}:login")

    def code_url(self) -> str:
        return reverse(f"{self.admin_site.name}:second_factor_code")

    def enrol_url(self) -> str:
        return reverse(f"{self.admin_site.name}:second_factor_enrol")

    def context(self, request: HttpRequest, **extra: Any) -> dict[str, Any]:
        return {**self.admin_site.each_context(request), **extra}


class OperatorLoginView(LoginView):
    """The console's password step: a right password leads to the code step, not into the console."""

    authentication_form = AdminAuthenticationForm
    template_name = "admin/login.html"
    admin_site: admin.AdminSite = admin.site  # set by operator_login

    def get_default_redirect_url(self) -> str:
        return reverse(f"{self.admin_site.name}:index")

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """Behind the throttle the organisers' sign-in shares (tenants/throttle.py): while a delay runs
        the answer is 429 and no password is checked."""
        attempt = signin_attempt_register(request, request.POST.get("username", ""))
        if not attempt.allowed:
            context = {
                **self.admin_site.each_context(request),
                "title": "Too many failed sign-ins",
                "wait": retry_after_text(attempt.retry_after),
            }
            throttled = TemplateResponse(request, "operator/signin_throttled.html", context, status=429)
            throttled["Retry-After"] = str(attempt.retry_after)
            return throttled
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: AdminAuthenticationForm) -> HttpResponse:  # type: ignore[override]
        signin_succeeded(self.request, self.request.POST.get("username", ""))
        pending_start(self.request, form.get_user(), site=OPERATOR_SITE, next_url=self.get_success_url())
        return HttpResponseRedirect(reverse(f"{self.admin_site.name}:second_factor_code"))

    def form_invalid(self, form: AdminAuthenticationForm) -> HttpResponse:  # type: ignore[override]
        if form.get_user() is not None:  # the password was right, the account is no operator
            signin_refusal_report(self.request, self.request.POST.get("username", ""))
        return super().form_invalid(form)


def operator_login(
    admin_site: admin.AdminSite, request: HttpRequest, extra_context: Any = None
) -> HttpResponse:
    """Django's AdminSite.login with OperatorLoginView instead of its LoginView."""
    if request.method == "GET" and admin_site.has_permission(request):
        return HttpResponseRedirect(reverse(f"{admin_site.name}:index"))
    context = {
        **admin_site.each_context(request),
        "title": "Log in",
        "subtitle": None,
        "app_path": request.get_full_path(),
        "username": request.user.get_username(),
    }
    if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
        context[REDIRECT_FIELD_NAME] = reverse(f"{admin_site.name}:index")
    context.update(extra_context or {})
    request.current_app = admin_site.name
    return OperatorLoginView.as_view(extra_context=context, admin_site=admin_site)(request)  # type: ignore[return-value]


def second_factor_urls(admin_site: admin.AdminSite, steps: OperatorSecondFactor) -> list[URLPattern]:
    """The code step and enrolment: outside admin_view (nobody is signed in yet), never cached."""
    from django.views.decorators.cache import never_cache

    return [
        path("login/code/", never_cache(steps.code_view), name="second_factor_code"),
        path("login/enrol/", never_cache(steps.enrol_view), name="second_factor_enrol"),
    ]


class OperatorUserAdmin(UserAdmin):
    """Django's user admin, with whether the user has a second factor and the audited reset of it."""

    change_form_template = "operator/user_change_form.html"
    list_display = ("username", "email", "first_name", "last_name", "is_staff", "second_factor")
    second_factor_steps: OperatorSecondFactor

    @admin.display(boolean=True, description="second factor")
    def second_factor(self, user: Any) -> bool:
        return user_has_device(user, confirmed=True)

    def get_urls(self) -> list[URLPattern]:
        reset = path(
            "<int:pk>/second-factor/",
            self.admin_site.admin_view(self.second_factor_reset_view),
            name="auth_user_second_factor_reset",
        )
        return [reset, *super().get_urls()]

    def second_factor_reset_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        user = get_user_model().objects.filter(pk=pk).first()
        if user is None:
            return HttpResponse(status=404)
        if not self.has_change_permission(request, user):
            return HttpResponse(status=403)
        if request.method == "POST":
            prompt = self.second_factor_steps.reverification_response(request)
            if prompt is not None:
                return prompt
            result = second_factor_reset(user, actor=request.user.get_username())
            self.message_user(
                request,
                f"The second factor of {user.get_username()} is reset: {result.devices} device(s) removed, "
                f"{result.sessions} session(s) ended. They set up a new one at their next sign-in.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(reverse(f"{self.admin_site.name}:auth_user_change", args=[user.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Reset the second factor of {user.get_username()}",
            "opts": self.model._meta,
            "original": user,
            "enrolled": user_has_device(user, confirmed=True),
        }
        return TemplateResponse(request, "operator/second_factor_reset.html", context)
