"""Who may use an initiative's /manage/ pages: its organisers, signed in on its own site.

The session table is shared by every site, and host-only cookies alone keep one initiative's session away
from another's host. So the check runs on every request: the user organises `request.tenant` (read from
the database each time, so removing a membership ends access at once), and the session was opened on this
initiative's site (a session copied to another host is refused even for someone who organises both).

Sign-ins are throttled by tenants/throttle.py, on the same counters as the operator console's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation

from exports.selectors import organiser_of
from tenants.models import Initiative
from tenants.second_factor import is_verified

# The session remembers on which initiative's site it was opened.
SESSION_INITIATIVE_KEY = "manage_initiative"
# The organiser pages are not translated yet: English, whatever the browser asks for.
MANAGE_LANGUAGE = "en"

View = Callable[..., HttpResponseBase]


def current_initiative(request: HttpRequest) -> Initiative:
    initiative: Initiative = request.tenant  # type: ignore[attr-defined]  # set by InitiativeHostMiddleware
    return initiative


def manage_context(request: HttpRequest, **extra: object) -> dict[str, object]:
    """What every organiser page shows: the initiative (its title in English, else as registered)."""
    initiative = current_initiative(request)
    return {"initiative": initiative, "initiative_title": initiative.text("title", MANAGE_LANGUAGE), **extra}


def manage_language_activate() -> None:
    # activate, not override: Django's auth form builds lazy messages rendered after the view returns.
    translation.activate(MANAGE_LANGUAGE)


def session_bind(request: HttpRequest) -> None:
    """Called after a successful sign-in, both factors given (the session key is new by then)."""
    request.session[SESSION_INITIATIVE_KEY] = current_initiative(request).schema_name


def organiser_required(view: View) -> View:
    """Anonymous, or signed in without the second factor: to the sign-in page with `next`. Signed in
    but not an organiser of this initiative, or with a session of another site: the 403 page."""

    @functools.wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        manage_language_activate()
        initiative = current_initiative(request)
        user = request.user
        if not (user.is_authenticated and is_verified(request)):
            # After signing in, come back here for a page; a form's target would answer 405 to a GET.
            back = (
                request.get_full_path() if request.method in ("GET", "HEAD") else reverse("manage-dashboard")
            )
            return redirect_to_login(back, reverse("manage-login"))
        bound = request.session.get(SESSION_INITIATIVE_KEY) == initiative.schema_name
        staff = user.is_staff or user.is_superuser  # roles kept apart: never an organiser
        if staff or not (bound and organiser_of(user.pk, initiative.pk)):
            return render(request, "manage/forbidden.html", manage_context(request), status=403)
        return view(request, *args, **kwargs)

    return guarded
