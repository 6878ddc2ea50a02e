"""The organisers' dashboard on an initiative's site, /manage/: the published counts against the thresholds,
the statements per day, the timeline, the team and the audit trail; pausing, resuming and closing
collection; CSV of the aggregates. In the 24 official languages (`?lang=`, remembered in the session).
Thin: parse, call one selector or service (collection.dashboard, tenants.services), render. Every view is
behind `organiser_required`: only the current initiative's own data is ever read."""

from __future__ import annotations

import csv
from typing import Any

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal, format_percent
from django.conf import settings
from django.contrib import messages
from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy
from django.utils.translation.trans_real import parse_accept_lang_header
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST, require_safe

from collection.dashboard import (
    CountsProgress,
    counts_progress,
    initiative_timeline,
    statements_per_day,
)
from collection.forms import country_name
from exports.access import current_initiative, manage_context, organiser_required
from exports.charts import daily_chart, day_label
from exports.dashboard_forms import COLLECTION_ACTIONS, AuditFilterForm, CollectionControlForm
from exports.second_factor_views import second_factor_fresh
from exports.selectors import audit_actions_of, audit_trail_of
from regulation.languages import OFFICIAL_LANGUAGE_CODES
from tenants.models import Initiative, InitiativeState
from tenants.organisers import invitations_open, organisers_of
from tenants.services import TransitionError, initiative_transition
from tenants.sessions import see_other

# The dashboard's language, once chosen with ?lang=, for the organiser's later pages of the session.
SESSION_LANGUAGE_KEY = "manage_dashboard_language"
AUDIT_PAGE_SIZE = 25
RECENT_EVENTS = 5


def dashboard_language(request: HttpRequest) -> str:
    """?lang= (remembered), else the one remembered, else the browser's, else English; activated."""
    asked = request.GET.get("lang", "")
    if asked in OFFICIAL_LANGUAGE_CODES:
        request.session[SESSION_LANGUAGE_KEY] = asked
        language = asked
    else:
        language = request.session.get(SESSION_LANGUAGE_KEY, "")
    if language not in OFFICIAL_LANGUAGE_CODES:
        language = "en"
        for accepted, _quality in parse_accept_lang_header(request.META.get("HTTP_ACCEPT_LANGUAGE", "")):
            base = accepted.split("-", 1)[0].lower()
            if base in OFFICIAL_LANGUAGE_CODES:
                language = base
                break
    translation.activate(language)
    return language


def _long_date(day: Any, language: str) -> str:
    return format_date(day, format="long", locale=language)


def _page_context(request: HttpRequest, language: str, **extra: object) -> dict[str, object]:
    initiative = current_initiative(request)
    return manage_context(
        request,
        language=language,
        initiative_title=initiative.text("title", language),
        languages=settings.LANGUAGES,
        **extra,
    )


def _state_rows(progress: CountsProgress, language: str) -> list[dict[str, object]]:
    # Nearest to their threshold first: the seven States that matter are on top.
    states = sorted(progress.states, key=lambda state: (-state.ratio, state.code))
    return [
        {
            "code": state.code,
            "name": country_name(state.code, language),
            "count": state.count,
            "threshold": state.threshold,
            "reached": state.reached,
            "count_text": format_decimal(state.count, locale=language),
            "threshold_text": format_decimal(state.threshold, locale=language),
            "percent_text": format_percent(state.ratio, locale=language),
        }
        for state in states
    ]


def _sent_action(form: CollectionControlForm | None) -> str:
    action = form.data.get("action", "") if form is not None else ""
    return action if action in COLLECTION_ACTIONS else ""


def _dashboard(
    request: HttpRequest,
    language: str,
    *,
    control_form: CollectionControlForm | None = None,
    refusal: str = "",
    status: int = 200,
) -> HttpResponse:
    # The row as stored now: the host lookup may remember the initiative (shared by the process's
    # threads) for a few seconds.
    initiative = Initiative.objects.get(pk=current_initiative(request).pk)
    progress = counts_progress(initiative)
    days = statements_per_day(initiative, until=progress.counted_at)
    busiest = max(days, key=lambda day: day.count) if days else None
    today = timezone.localdate()
    context = _page_context(
        request,
        language,
        state=initiative.state,
        progress=progress,
        total_text=format_decimal(progress.total, locale=language),
        required_text=format_decimal(progress.signatories_required, locale=language),
        total_percent_text=format_percent(progress.total_ratio, locale=language),
        counted_at_text=(
            format_datetime(
                progress.counted_at, format="medium", tzinfo=timezone.get_current_timezone(), locale=language
            )
            if progress.counted_at
            else ""
        ),
        table_from_text=_long_date(progress.table.applies_from, language),
        registered_text=_long_date(initiative.registered_on, language),
        rows=_state_rows(progress, language),
        days=[
            {
                "day": day.day,
                "text": day_label(day.day, language),
                "count": format_decimal(day.count, locale=language),
            }
            for day in days
        ],
        chart=daily_chart(days, language),
        days_total_text=format_decimal(sum(day.count for day in days), locale=language),
        days_count_text=format_decimal(len(days), locale=language),
        busiest_day_text=day_label(busiest.day, language) if busiest else "",
        busiest_count_text=format_decimal(busiest.count, locale=language) if busiest else "",
        timeline=[
            {"entry": entry, "text": _long_date(entry.day, language), "past": entry.day < today}
            for entry in initiative_timeline(initiative)
        ],
        today_text=_long_date(today, language),
        memberships=list(organisers_of(initiative)),
        invitations=[
            (invitation, _long_date(timezone.localdate(invitation.expires_at), language))
            for invitation in invitations_open(initiative)
        ],
        recent_events=list(audit_trail_of(initiative)[:RECENT_EVENTS]),
        control_form=control_form or CollectionControlForm(),
        # The form that came back (its fields carry the errors); none when the action was not one.
        control_action=_sent_action(control_form),
        refusal=refusal,
        period_over=today > initiative.collection_end,
    )
    response = render(request, "manage/dashboard.html", context, status=status)
    response.headers["Content-Language"] = language
    return response


@never_cache
@require_safe
@organiser_required
def dashboard_page(request: HttpRequest) -> HttpResponse:
    """GET /manage/: the organisers' home."""
    return _dashboard(request, dashboard_language(request))


# Why an action was refused, in words that do not depend on the service's English message.
REFUSALS: dict[str, object] = {
    "pause": gettext_lazy("Collection cannot be paused now: it is not running."),
    "resume": gettext_lazy(
        "Collection cannot be resumed now: it is not paused, or the collection period is over."
    ),
    "close": gettext_lazy("Collection cannot be closed now: it is neither running nor paused."),
}
DONE: dict[str, object] = {
    InitiativeState.PAUSED: gettext_lazy("Collection is paused."),
    InitiativeState.COLLECTING: gettext_lazy("Collection is running."),
    InitiativeState.CLOSED: gettext_lazy("Collection is closed."),
}


@never_cache
@require_POST
@organiser_required
@second_factor_fresh
def collection_control(request: HttpRequest) -> HttpResponse:
    """POST /manage/collection/ (action=pause|resume|close, reason, confirm for closing): the change
    through the lifecycle service, which audits it with the reason; 303 to the dashboard. A form with
    errors is a 400, a change the current state does not allow a 409; nothing is written then."""
    language = dashboard_language(request)
    form = CollectionControlForm(request.POST)
    if not form.is_valid():
        return _dashboard(request, language, control_form=form, status=400)
    action = form.cleaned_data["action"]
    to_state, from_states = COLLECTION_ACTIONS[action]
    try:
        initiative_transition(
            current_initiative(request),
            to_state,
            actor=request.user.get_username(),
            reason=form.cleaned_data["reason"],
            expected_from=from_states,
        )
    except TransitionError:
        return _dashboard(request, language, control_form=form, refusal=str(REFUSALS[action]), status=409)
    messages.success(request, str(DONE[to_state]))
    return see_other(reverse("manage-dashboard"))


def _csv_response(filename: str, header: list[str], rows: list[list[object]]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    writer = csv.writer(response)
    writer.writerow(header)
    writer.writerows(rows)
    return response


def _csv_name(initiative: Initiative, what: str) -> str:
    return f"{initiative.slug}-{what}-{timezone.localdate().isoformat()}.csv"


@never_cache
@require_GET
@organiser_required
def counts_csv(request: HttpRequest) -> HttpResponse:
    """GET /manage/counts.csv: the published count and the threshold per Member State (aggregates)."""
    initiative = current_initiative(request)
    progress = counts_progress(initiative)
    counted_at = progress.counted_at.isoformat() if progress.counted_at else ""
    rows: list[list[object]] = [
        [state.code, state.count, state.threshold, "yes" if state.reached else "no", counted_at]
        for state in progress.states
    ]
    header = ["member_state", "statements", "threshold", "threshold_reached", "counted_at"]
    return _csv_response(_csv_name(initiative, "counts"), header, rows)


@never_cache
@require_GET
@organiser_required
def daily_csv(request: HttpRequest) -> HttpResponse:
    """GET /manage/daily.csv: statements per day up to the published count (aggregates)."""
    initiative = current_initiative(request)
    progress = counts_progress(initiative)
    days = statements_per_day(initiative, until=progress.counted_at)
    rows: list[list[object]] = [[day.day.isoformat(), day.count] for day in days]
    return _csv_response(_csv_name(initiative, "daily"), ["day", "statements"], rows)


@never_cache
@require_safe
@organiser_required
def audit_page(request: HttpRequest) -> HttpResponse:
    """GET /manage/audit/?action=&since=&until=&page=: the initiative's audit trail, newest first. A bad
    filter is a 400 with the form and its messages, a page that does not exist a 404."""
    language = dashboard_language(request)
    initiative = current_initiative(request)
    form = AuditFilterForm(request.GET or None, actions=audit_actions_of(initiative))
    if form.is_bound and not form.is_valid():
        context = _page_context(request, language, form=form, page=None, query="")
        return render(request, "manage/audit.html", context, status=400)
    filters = form.cleaned_data if form.is_bound else {}
    events = audit_trail_of(
        initiative,
        action=filters.get("action") or "",
        since=filters.get("since"),
        until=filters.get("until"),
    )
    paginator = Paginator(events, AUDIT_PAGE_SIZE, allow_empty_first_page=True)
    try:
        page = paginator.page(request.GET.get("page", 1))
    except (PageNotAnInteger, EmptyPage) as bad:
        # Not a whole number: a bad request; a number past the last page: no such page.
        context = _page_context(request, language, form=form, page=None, query="", bad_page=True)
        return render(
            request, "manage/audit.html", context, status=400 if isinstance(bad, PageNotAnInteger) else 404
        )
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("lang", None)
    context = _page_context(
        request,
        language,
        form=form,
        page=page,
        query=query.urlencode(),
        page_text=format_decimal(page.number, locale=language),
        pages_text=format_decimal(paginator.num_pages, locale=language),
        found_text=format_decimal(paginator.count, locale=language),
    )
    return render(request, "manage/audit.html", context)
