"""The organisers' Annex VII pages on an initiative's site, under /manage/ (REQ-28): the funding sources
they enter, and the submission to the Commission as a printable page and as JSON. Thin: parse, call one
service or selector, render. Each page is behind `organiser_required`, so an organiser of another
initiative, or a session opened on another site, gets the 403 page."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from exports.access import current_initiative, manage_context, organiser_required
from exports.forms import FundingSourceFormSet
from tenants.certification import FUNDING_EDITABLE_STATES, FundingSourcesError, initiative_funding_sources_set
from tenants.submission import annex_vii_submission, funding_total


def _funding_page(
    request: HttpRequest, formset: Any, *, refusal: list[str] | None = None, status: int = 200
) -> HttpResponse:
    initiative = current_initiative(request)
    context = manage_context(
        request,
        formset=formset,
        refusal=refusal or [],
        sources=initiative.funding_sources or [],
        total=f"{funding_total(initiative.funding_sources or []):.2f}",
        editable=initiative.state in FUNDING_EDITABLE_STATES,
    )
    return render(request, "manage/funding.html", context, status=status)


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
@organiser_required
def funding_page(request: HttpRequest) -> HttpResponse:
    """GET /manage/funding/: the funding sources as rows to edit, and blank rows to add. POST replaces
    them all: 303 back with a message, or 400 with each problem next to its row (nothing is written)."""
    initiative = current_initiative(request)
    if request.method != "POST":
        return _funding_page(request, FundingSourceFormSet(initial=initiative.funding_sources or []))
    formset = FundingSourceFormSet(request.POST)
    if not formset.is_valid():
        return _funding_page(request, formset, status=400)
    sources = [
        form.cleaned_data
        for form in formset.forms
        if form.cleaned_data and not form.cleaned_data.get("DELETE")
    ]
    try:
        initiative_funding_sources_set(
            initiative,
            [{"source": row["source"], "amount_eur": row["amount_eur"]} for row in sources],
            actor=request.user.get_username(),
        )
    except FundingSourcesError as error:
        return _funding_page(request, formset, refusal=error.messages, status=400)
    total = funding_total(initiative.funding_sources)
    messages.success(
        request, f"Funding sources saved: {len(initiative.funding_sources)}, in all {total:.2f} euros."
    )
    response = HttpResponseRedirect(reverse("manage-funding"))
    response.status_code = 303
    return response


@never_cache
@require_GET
@organiser_required
def submission_page(request: HttpRequest) -> HttpResponse:
    """GET /manage/submission/: the Annex VII form, to print (REQ-28)."""
    submission = annex_vii_submission(current_initiative(request))
    return render(request, "manage/submission.html", manage_context(request, submission=submission))


@never_cache
@require_GET
@organiser_required
def submission_json(request: HttpRequest) -> JsonResponse:
    """GET /manage/submission.json: the same content as data."""
    return JsonResponse(annex_vii_submission(current_initiative(request)), encoder=DjangoJSONEncoder)
