"""Ending a user's sessions and answering a form with a redirect, for both signed-in areas."""

from __future__ import annotations

from django.contrib import auth
from django.contrib.sessions.models import Session
from django.http import HttpResponseRedirect
from django.utils import timezone


def user_sessions_end(user_id: int) -> int:
    """Delete every live session signed in as the user, on every host (one table serves them all);
    returns how many. Sessions are not indexed by user, so the live ones are read: they are few
    (operators and organisers only; citizens have none)."""
    ended = [
        session.session_key
        for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator()
        if session.get_decoded().get(auth.SESSION_KEY) == str(user_id)
    ]
    Session.objects.filter(session_key__in=ended).delete()
    return len(ended)


def see_other(location: str) -> HttpResponseRedirect:
    """303 after a POST: the next request is a GET, never a repeated POST."""
    response = HttpResponseRedirect(location)
    response.status_code = 303
    return response
