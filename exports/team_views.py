"""The organisers' team page on an initiative's site, /manage/organisers/: who organises the initiative,
the invitations still open, inviting another organiser by e-mail and removing one (which ends all of
that account's sessions). Thin: parse, call one service (tenants.organisers), render. Behind
`organiser_required`: an organiser of another initiative gets the 403 page."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from exports.access import current_initiative, manage_context, organiser_required
from exports.account_forms import InviteOrganiserForm
from exports.second_factor_views import second_factor_fresh
from tenants.organisers import (
    OrganiserError,
    invitations_open,
    organiser_invite,
    organiser_membership,
    organiser_remove,
    organisers_of,
)
from tenants.sessions import see_other


def _team_page(
    request: HttpRequest, form: InviteOrganiserForm, *, refusal: str = "", status: int = 200
) -> HttpResponse:
    initiative = current_initiative(request)
    context = manage_context(
        request,
        form=form,
        refusal=refusal,
        memberships=list(organisers_of(initiative)),
        invitations=list(invitations_open(initiative)),
    )
    return render(request, "manage/organisers.html", context, status=status)


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
@organiser_required
@second_factor_fresh
def organisers_page(request: HttpRequest) -> HttpResponse:
    """GET: the organisers and open invitations, and the invitation form. POST: invite (303 back with a
    message, or 400 with the reason; nothing is written then)."""
    if request.method != "POST":
        return _team_page(request, InviteOrganiserForm())
    form = InviteOrganiserForm(request.POST)
    if not form.is_valid():
        return _team_page(request, form, status=400)
    try:
        invitation = organiser_invite(
            current_initiative(request), email=form.cleaned_data["email"], actor=request.user.get_username()
        )
    except OrganiserError as error:
        if error.field in form.fields:
            form.add_error(error.field, str(error))
            return _team_page(request, form, status=400)
        return _team_page(request, form, refusal=str(error), status=400)
    messages.success(
        request, f"Invitation sent to {invitation.email}. Its link works once, for a limited time."
    )
    return see_other(reverse("manage-organisers"))


@never_cache
@require_POST
@organiser_required
@second_factor_fresh
def organiser_remove_page(request: HttpRequest, user_id: int) -> HttpResponse:
    """POST /manage/organisers/<user id>/remove/: another organiser of this initiative leaves the team and
    is signed out everywhere. One's own account is removed by another organiser or the operator."""
    initiative = current_initiative(request)
    if user_id == request.user.pk:
        return _team_page(
            request,
            InviteOrganiserForm(),
            refusal="You cannot remove yourself; another organiser or the operator can.",
            status=400,
        )
    membership = organiser_membership(initiative, user_id)
    if membership is None:
        return _team_page(
            request, InviteOrganiserForm(), refusal="That account is not an organiser here.", status=404
        )
    organiser_remove(initiative, membership.user, actor=request.user.get_username())
    messages.success(
        request, f"{membership.user.get_username()} is no longer an organiser, and is signed out."
    )
    return see_other(reverse("manage-organisers"))
