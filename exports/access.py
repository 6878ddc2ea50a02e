"""Who may use an initiative's /manage/ pages: its organisers, signed in on its own site.

The session table is shared by every site, and host-only cookies alone keep one initiative's session away
from another's host. So the check runs on every request: the user organises `request.tenant` (read from
the database each time, so removing a membership ends access at once), and the session was opened on this
initiative's site (a session copied to another host is refused even for someone who organises both).

Failed sign-ins are counted in Redis per typed user name and per client network (/32, /64), for each
initiative, under keyed hashes (no user name or address in Redis); over the limit the sign-in page answers
429 without checking the password, whether the user exists or not.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation

from collection.ratelimit import buckets_of, client_address
from collection.redis_store import redis_client
from exports.selectors import organiser_of
from tenants.models import Initiative
from tenants.second_factor import is_verified

# The session remembers on which initiative's site it was opened.
SESSION_INITIATIVE_KEY = "manage_initiative"
# The organiser pages are not translated yet: English, whatever the browser asks for.
MANAGE_LANGUAGE = "en"

LOGIN_WINDOW_SECONDS = 15 * 60  # counted from the last failure
LOGIN_FAILURES_PER_ACCOUNT = 10
LOGIN_FAILURES_PER_NETWORK = 50

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
            back = request.get_full_path() if request.method in ("GET", "HEAD") else reverse("manage-exports")
            return redirect_to_login(back, reverse("manage-login"))
        bound = request.session.get(SESSION_INITIATIVE_KEY) == initiative.schema_name
        if not (bound and organiser_of(user.pk, initiative.pk)):
            return render(request, "manage/forbidden.html", manage_context(request), status=403)
        return view(request, *args, **kwargs)

    return guarded


def _hashed(kind: str, value: str) -> str:
    secret = hmac.new(settings.SECRET_KEY.encode(), b"manage-login", hashlib.sha256).digest()
    return hmac.new(secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:32]


def _login_counters(request: HttpRequest, username: str) -> list[tuple[str, int]]:
    initiative_id = current_initiative(request).pk
    account = _hashed("account", username.strip().casefold())
    network = _hashed("network", buckets_of(client_address(request))[0].network)
    return [
        (cache.make_key(f"manage-login:{initiative_id}:account:{account}"), LOGIN_FAILURES_PER_ACCOUNT),
        (cache.make_key(f"manage-login:{initiative_id}:network:{network}"), LOGIN_FAILURES_PER_NETWORK),
    ]


def login_attempt_register(request: HttpRequest, username: str) -> bool:
    """Count a sign-in attempt before its password is checked, and say whether it may go on: counting
    first means simultaneous attempts cannot all slip under the limit. A success is uncounted."""
    pipeline = redis_client().pipeline(transaction=False)
    counters = _login_counters(request, username)
    for key, _limit in counters:
        pipeline.incr(key)
        pipeline.expire(key, LOGIN_WINDOW_SECONDS)
    counts = pipeline.execute()[0::2]
    return all(int(count) <= limit for (_key, limit), count in zip(counters, counts, strict=True))


def login_success_uncount(request: HttpRequest, username: str) -> None:
    """A successful sign-in is not a failure: take back what `login_attempt_register` counted."""
    pipeline = redis_client().pipeline(transaction=False)
    for key, _limit in _login_counters(request, username):
        pipeline.decr(key)
    pipeline.execute()
