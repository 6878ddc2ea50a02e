"""Sessions, sign-in, flash messages and Django's locale negotiation only where someone signs in: the
platform domain (operator console) and an initiative's organiser pages under /manage/.

An initiative's public pages (the form, the receipt, the counts) keep no session: a citizen leaves no
session row and no session cookie behind, and each signature is spared four middleware. Those pages pick
their language themselves (?lang=, else the browser's, else the registered language) and say that they
vary with the browser's."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils.cache import patch_vary_headers
from django.utils.module_loading import import_string

# In the order Django documents for them: sessions first, the locale before CommonMiddleware (this
# middleware stands where sessions stood), messages after sessions.
SIGNED_IN_MIDDLEWARE = (
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): signed in with the second factor (django-otp), after authentication.
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # 12 hours at most, 30 minutes idle (after authentication and messages: it signs out with a message).
    "eci_platform.session_limits.SessionLimitsMiddleware",
)
SIGNED_IN_PREFIX = "/manage/"


def public_page_vary(response: HttpResponseBase) -> None:
    """A public page's language follows the browser's (as well as ?lang=): caches must know it."""
    patch_vary_headers(response, ("Accept-Language",))


class SignedInAreasMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        chain = get_response
        for path in reversed(SIGNED_IN_MIDDLEWARE):
            chain = import_string(path)(chain)
        self.signed_in_response = chain

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Host routing (eci_platform.hosts) ran first: it chose the URL conf.
        urlconf = getattr(request, "urlconf", settings.ROOT_URLCONF)
        if urlconf != settings.ROOT_URLCONF or request.path_info.startswith(SIGNED_IN_PREFIX):
            return self.signed_in_response(request)
        response = self.get_response(request)
        public_page_vary(response)
        return response
