"""Short sessions on the operator console and the organisers' pages: at most SESSION_ABSOLUTE_SECONDS
(12 hours) from signing in, and at most SESSION_IDLE_SECONDS (30 minutes) without a request. An expired
session is signed out and sent to its sign-in page with a message.

The session remembers when it was signed in (stamped by the user_logged_in signal, so every way of
signing in counts, a second factor included) and when it was last used. A signed-in session without the
stamp (opened before these limits existed, or by some other path) counts as expired. Runs inside
SignedInAreasMiddleware (eci_platform/areas.py), after authentication and messages.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

SIGNED_IN_AT = "signed_in_at"
LAST_SEEN_AT = "last_seen_at"
# The last use is written at most this often: a session write on every request would cost a database
# write per page for a precision the idle limit does not need.
SEEN_RESOLUTION_SECONDS = 60


def session_stamp(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    """user_logged_in receiver (connected in eci_platform/apps.py): the session starts now."""
    if request is not None and hasattr(request, "session"):
        request.session[SIGNED_IN_AT] = request.session[LAST_SEEN_AT] = time.time()


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = max(1, seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _expiry(request: HttpRequest, now: float) -> str:
    """Why the session has expired, or "" while it is good."""
    signed_in_at = request.session.get(SIGNED_IN_AT)
    if not isinstance(signed_in_at, int | float):
        return "Your session has expired. Please sign in again."
    if now - signed_in_at > settings.SESSION_ABSOLUTE_SECONDS:
        limit = _duration(settings.SESSION_ABSOLUTE_SECONDS)
        return f"Sessions last at most {limit}: yours has ended. Please sign in again."
    last_seen_at = request.session.get(LAST_SEEN_AT, signed_in_at)
    if now - last_seen_at > settings.SESSION_IDLE_SECONDS:
        limit = _duration(settings.SESSION_IDLE_SECONDS)
        return f"You were signed out after {limit} without activity. Please sign in again."
    return ""


def _login_url(request: HttpRequest) -> str:
    # The tenant URL conf is the organisers' (its sign-in page); the platform domain's is the console's.
    # Middleware runs before Django makes the request's URL conf the current one: name it.
    urlconf = getattr(request, "urlconf", settings.ROOT_URLCONF)
    name = "manage-login" if urlconf == settings.ROOT_URLCONF else "operator:login"
    return reverse(name, urlconf=urlconf)


class SessionLimitsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = time.time()
            reason = _expiry(request, now)
            if reason:
                logout(request)
                messages.info(request, reason)
                back = request.get_full_path() if request.method in ("GET", "HEAD") else None
                return redirect_to_login(back or "", _login_url(request))
            if now - request.session.get(LAST_SEEN_AT, 0) >= SEEN_RESOLUTION_SECONDS:
                request.session[LAST_SEEN_AT] = now
        return self.get_response(request)
