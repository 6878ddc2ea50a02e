"""The organisers' second factor on an initiative's site: the code step and enrolment after the password
(/manage/login/code/, /manage/login/enrol/), and the code asked again before an export request or a
download link (`second_factor_fresh`). The steps themselves are shared with the operator console
(tenants/second_factor_views.py)."""

from __future__ import annotations

import functools
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from exports.access import View, current_initiative, manage_context, manage_language_activate, session_bind
from tenants.models import Initiative
from tenants.second_factor_views import SecondFactorSite


class ManageSecondFactor(SecondFactorSite):
    code_template = "manage/second_factor_code.html"
    enrol_template = "manage/second_factor_enrol.html"
    backup_codes_template = "manage/second_factor_backup_codes.html"
    reverify_template = "manage/second_factor_reverify.html"

    def site(self, request: HttpRequest) -> str:
        # A sign-in begun on one initiative's site goes on only there.
        return current_initiative(request).schema_name

    def initiative(self, request: HttpRequest) -> Initiative | None:
        return current_initiative(request)

    def login_url(self) -> str:
        return reverse("manage-login")

    def code_url(self) -> str:
        return reverse("manage-login-code")

    def enrol_url(self) -> str:
        return reverse("manage-login-enrol")

    def context(self, request: HttpRequest, **extra: Any) -> dict[str, Any]:
        return manage_context(request, **extra)

    def signed_in(self, request: HttpRequest) -> None:
        session_bind(request)


MANAGE_SECOND_FACTOR = ManageSecondFactor()


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def login_code(request: HttpRequest) -> HttpResponse:
    """GET /manage/login/code/, POST a TOTP or backup code: signs in (303 to where sign-in began)."""
    manage_language_activate()
    return MANAGE_SECOND_FACTOR.code_view(request)


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def login_enrol(request: HttpRequest) -> HttpResponse:
    """GET /manage/login/enrol/: the new secret; POST its current code: signs in, shows backup codes."""
    manage_language_activate()
    return MANAGE_SECOND_FACTOR.enrol_view(request)


def second_factor_fresh(view: View) -> View:
    """Under organiser_required: a POST goes on only if the second factor was typed recently; else the
    answer asks for it and sends the same form again."""

    @functools.wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method == "POST":
            prompt = MANAGE_SECOND_FACTOR.reverification_response(request)
            if prompt is not None:
                return prompt
        return view(request, *args, **kwargs)

    return guarded


def second_factor_fresh_download(view: View) -> View:
    """Under organiser_required, for a download that a GET starts (the e-mail addresses): the code again
    if it is older than 15 minutes, on a page that POSTs it back to the same address; the view then
    answers that POST as it answers the GET."""

    @functools.wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        prompt = MANAGE_SECOND_FACTOR.reverification_response(request)
        return prompt if prompt is not None else view(request, *args, **kwargs)

    return guarded
