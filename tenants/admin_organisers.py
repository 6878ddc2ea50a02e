"""The operator console's organisers page of an initiative, `<id>/organisers/`: its organisers (each with
a remove button, which ends that account's sessions), the invitations still open, and a form to invite
an organiser by e-mail. Kept apart from tenants/admin.py, which wires it in with `organiser_urls`."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from tenants.models import Initiative
from tenants.organisers import (
    ADDRESS_MAX_LENGTH,
    OrganiserError,
    invitations_open,
    organiser_invite,
    organiser_membership,
    organiser_remove,
    organisers_of,
)


class InviteForm(forms.Form):
    email = forms.CharField(label="E-mail address", max_length=ADDRESS_MAX_LENGTH)


def _initiative(request: HttpRequest, object_id: str) -> Initiative | None:
    return Initiative.objects.filter(pk=int(object_id)).first() if object_id.isdigit() else None


def organiser_urls(modeladmin: admin.ModelAdmin) -> list[URLPattern]:
    """Before the admin's own URLs: its `<path:object_id>/` would take these paths otherwise."""

    def page_url(initiative: Initiative) -> str:
        return reverse("operator:tenants_initiative_organisers", args=[initiative.pk])

    @never_cache
    @require_http_methods(["GET", "HEAD", "POST"])
    def page(request: HttpRequest, object_id: str) -> HttpResponse:
        initiative = _initiative(request, object_id)
        if initiative is None or not modeladmin.has_view_permission(request, initiative):
            return HttpResponse("No such initiative.", status=404, content_type="text/plain; charset=utf-8")
        can_change = modeladmin.has_change_permission(request, initiative)
        form = InviteForm(request.POST if request.method == "POST" else None)
        if request.method == "POST":
            if not can_change:
                return HttpResponse(status=403)
            if form.is_valid():
                try:
                    invitation = organiser_invite(
                        initiative, email=form.cleaned_data["email"], actor=request.user.get_username()
                    )
                except OrganiserError as error:
                    form.add_error("email" if error.field == "email" else None, str(error))
                else:
                    modeladmin.message_user(
                        request,
                        f"Invitation {invitation.pk} sent to {invitation.email}; its link works once, until "
                        f"{invitation.expires_at:%Y-%m-%d %H:%M %Z}.",
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(page_url(initiative))
        context = {
            **modeladmin.admin_site.each_context(request),
            "title": f"Organisers of {initiative.slug}: invite an organiser",
            "initiative": initiative,
            "memberships": list(organisers_of(initiative)),
            "invitations": list(invitations_open(initiative)),
            "form": form,
            "can_change": can_change,
            "opts": modeladmin.model._meta,
            "change_url": reverse("operator:tenants_initiative_change", args=[initiative.pk]),
        }
        status = 400 if request.method == "POST" else 200
        return TemplateResponse(request, "operator/organisers.html", context, status=status)

    @never_cache
    @require_POST
    def remove(request: HttpRequest, object_id: str, user_id: int) -> HttpResponse:
        initiative = _initiative(request, object_id)
        if initiative is None or not modeladmin.has_view_permission(request, initiative):
            return HttpResponse("No such initiative.", status=404, content_type="text/plain; charset=utf-8")
        if not modeladmin.has_change_permission(request, initiative):
            return HttpResponse(status=403)
        membership = organiser_membership(initiative, user_id)
        if membership is None:
            return HttpResponse(
                "No such organiser of this initiative.", status=404, content_type="text/plain; charset=utf-8"
            )
        ended = organiser_remove(initiative, membership.user, actor=request.user.get_username())
        modeladmin.message_user(
            request,
            f"{membership.user.get_username()} is no longer an organiser of {initiative.slug}; "
            f"{ended} session(s) ended.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(page_url(initiative))

    site = modeladmin.admin_site
    return [
        path("<path:object_id>/organisers/", site.admin_view(page), name="tenants_initiative_organisers"),
        path(
            "<path:object_id>/organisers/<int:user_id>/remove/",
            site.admin_view(remove),
            name="tenants_initiative_organiser_remove",
        ),
    ]
