"""The operator console's Annex VII pages (REQ-28), under an initiative's admin page:
`<id>/submission/` (printable) and `<id>/submission.json`. Kept apart from tenants/admin.py, which
wires them in with `submission_urls`."""

from __future__ import annotations

from django.contrib import admin
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import URLPattern, path, reverse
from django.views.decorators.cache import never_cache

from tenants.models import Initiative
from tenants.submission import annex_vii_submission


def _initiative(modeladmin: admin.ModelAdmin, request: HttpRequest, object_id: str) -> Initiative | None:
    if not object_id.isdigit():
        return None
    initiative = Initiative.objects.filter(pk=int(object_id)).first()
    if initiative is None or not modeladmin.has_view_permission(request, initiative):
        return None
    return initiative


def submission_urls(modeladmin: admin.ModelAdmin) -> list[URLPattern]:
    """Before the admin's own URLs: its `<path:object_id>/` would take these paths otherwise."""

    @never_cache
    def page(request: HttpRequest, object_id: str) -> HttpResponse:
        initiative = _initiative(modeladmin, request, object_id)
        if initiative is None:
            return HttpResponse("No such initiative.", status=404, content_type="text/plain; charset=utf-8")
        context = {
            "submission": annex_vii_submission(initiative),
            "change_url": reverse("operator:tenants_initiative_change", args=[initiative.pk]),
            "json_url": reverse("operator:tenants_initiative_submission_json", args=[initiative.pk]),
        }
        return render(request, "operator/submission.html", context)

    @never_cache
    def as_json(request: HttpRequest, object_id: str) -> HttpResponse:
        initiative = _initiative(modeladmin, request, object_id)
        if initiative is None:
            return JsonResponse({"error": "No such initiative."}, status=404)
        return JsonResponse(annex_vii_submission(initiative), encoder=DjangoJSONEncoder)

    site = modeladmin.admin_site
    return [
        path(
            "<path:object_id>/submission/",
            site.admin_view(page),
            name="tenants_initiative_submission",
        ),
        path(
            "<path:object_id>/submission.json",
            site.admin_view(as_json),
            name="tenants_initiative_submission_json",
        ),
    ]
