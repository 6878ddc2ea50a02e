"""Public pages of an initiative's site. Thin: pick the language, read, render."""

from __future__ import annotations

import contextlib
import datetime
import logging
import uuid

from babel.numbers import format_decimal, format_percent
from django.conf import settings
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext
from django.utils.translation.trans_real import parse_accept_lang_header
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from collection.antibot import challenge_create, proof_judge, proof_verify
from collection.forms import StatementForm, country_name, nationality_choices
from collection.metrics import STATEMENT_ATTEMPTS
from collection.models import Statement
from collection.ratelimit import client_address, signing_attempt_register, signing_pressure, truncated_address
from collection.selectors import (
    PublishedProgress,
    collection_open,
    counts_published,
    progress_published,
    statement_exists,
    statements_destroyed_at_the_latest,
)
from collection.services import DuplicateStatementError, statement_record
from collection.share_image import ShareCard, share_image_png
from regulation.annex_iii import FORM_REVISION
from regulation.languages import OFFICIAL_LANGUAGE_CODES
from regulation.member_states import member_state
from tenants.models import Initiative, InitiativeState
from tenants.urls import initiative_site_url

logger = logging.getLogger(__name__)

# What eci_platform.signing_lane hands over when it leaves a signing POST to this view: the attempt it has
# counted (its proof is spent) and an exception it met, raised here for Django's error pages. Environ
# keys without the HTTP_ prefix come from the server, never from a client.
LANE_ATTEMPT = "eci.signing_attempt"
LANE_ERROR = "eci.signing_lane_error"
LANE_DUPLICATE = "eci.signing_duplicate"  # its insert found the person's statement already there

# Which version of the Annex III forms a statement was signed on (stored with it).
WIDGET_LANGUAGES = {"es": "es-es", "fr": "fr-fr", "pt": "pt-pt"}


def chosen_language(request: HttpRequest, registered_language: str) -> str:
    """The visitor's explicit choice (?lang=), else the browser's, else the registered language."""
    # The query string is parsed only when it may hold a choice: most requests carry none.
    asked = request.GET.get("lang", "") if "lang=" in request.META.get("QUERY_STRING", "") else ""
    if asked in OFFICIAL_LANGUAGE_CODES:
        return asked
    # META, not request.headers: that would build a mapping of every header for this one.
    for accepted, _quality in parse_accept_lang_header(request.META.get("HTTP_ACCEPT_LANGUAGE", "")):
        base = accepted.split("-", 1)[0].lower()
        if base in OFFICIAL_LANGUAGE_CODES:
            return base
    return registered_language


def _public_cache_control(response: HttpResponse, language: str) -> HttpResponse:
    """Answers every visitor gets alike: proxies and browsers may keep them briefly, per language."""
    response.headers["Content-Language"] = language
    patch_cache_control(response, public=True, max_age=settings.PUBLIC_MAX_AGE_SECONDS)
    return response


def _progress_shown(
    initiative: Initiative, language: str, published: dict[str, object] | None
) -> dict[str, object]:
    """The published counts as the public pages show them: numbers formatted for `language`, the
    Member States by their name in it, bars as percentages of the goal."""
    progress = progress_published(initiative, published)

    def number(value: int) -> str:
        return format_decimal(value, locale=language)

    def share(part: int, whole: int) -> float:
        return min(1.0, part / whole) if whole else 0.0

    goal_share = share(progress.total, progress.signatories_required)
    states = sorted(
        (
            {
                "code": state.code,
                "name": country_name(state.code, language),
                "count": number(state.count),
                "threshold": number(state.threshold),
                "reached": state.reached,
                # An SVG attribute (not a style: the CSP allows no inline style for our pages' own use).
                "bar": f"{100 * share(state.count, state.threshold):.1f}",
            }
            for state in progress.states
        ),
        key=lambda shown: str(shown["name"]).casefold(),
    )
    counted_at = None
    if progress.counted_at:
        with contextlib.suppress(ValueError):
            counted_at = datetime.datetime.fromisoformat(progress.counted_at)
    return {
        "progress": progress,
        "total": number(progress.total),
        "goal": number(progress.signatories_required),
        "goal_percent": format_percent(goal_share, "#,##0.0%", locale=language),
        "goal_bar": f"{100 * goal_share:.1f}",
        "states_reached": number(progress.states_reached),
        "states_required": number(progress.member_states_required),
        "states": states,
        "counted_at": counted_at,
    }


def _share_texts(initiative: Initiative, language: str, shown: dict[str, object]) -> dict[str, str]:
    with translation.override(language):
        return {
            "label": gettext("European Citizens' Initiative"),
            "total_line": gettext("%(count)s of %(goal)s statements of support")
            % {"count": shown["total"], "goal": shown["goal"]},
            "states_line": gettext("%(reached)s of %(required)s Member States at or over their minimum")
            % {"reached": shown["states_reached"], "required": shown["states_required"]},
        }


@require_safe
def initiative_home(request: HttpRequest) -> HttpResponse:
    """GET /: the same for every visitor in a language, so kept by collection.public_cache."""
    initiative = request.tenant  # type: ignore[attr-defined]
    language = chosen_language(request, initiative.registered_language)
    translation.activate(language)
    shown = _progress_shown(initiative, language, counts_published())
    site = initiative_site_url(initiative)
    context = {
        "initiative": initiative,
        "language": language,
        "title": initiative.text("title", language),
        "subject": initiative.text("subject", language),
        "objectives": initiative.text("objectives", language),
        "languages": [(code, name) for code, name in settings.LANGUAGES if code in initiative.languages],
        "collecting": initiative.state == InitiativeState.COLLECTING,
        "page_url": f"{site}?lang={language}",
        "share_image_url": f"{site}share.png?lang={language}",
        "share": _share_texts(initiative, language, shown),
        "operator_name": settings.OPERATOR_NAME,
        **shown,
    }
    # Rendered without the request: nothing of one visitor (no CSRF token, no session) can get in.
    response = HttpResponse(render_to_string("collection/initiative_home.html", context))
    return _public_cache_control(response, language)


@require_safe
def share_image(request: HttpRequest) -> HttpResponse:
    """GET /share.png: the picture of a shared link, in the language asked for (kept by
    collection.public_cache: drawing it takes tens of milliseconds)."""
    initiative = request.tenant  # type: ignore[attr-defined]
    language = chosen_language(request, initiative.registered_language)
    shown = _progress_shown(initiative, language, counts_published())
    texts = _share_texts(initiative, language, shown)
    progress: PublishedProgress = shown["progress"]  # type: ignore[assignment]
    card = ShareCard(
        label=texts["label"],
        registration_number=initiative.registration_number,
        title=initiative.text("title", language),
        total=str(shown["total"]),
        total_line=texts["total_line"],
        states_line=texts["states_line"],
        share_of_goal=progress.total / progress.signatories_required,
    )
    response = HttpResponse(share_image_png(card), content_type="image/png")
    return _public_cache_control(response, language)


def _initiative_context(initiative: Initiative, language: str) -> dict[str, object]:
    """The initiative as registered, shown with every form (REQ-10)."""
    return {
        "initiative": initiative,
        "language": language,
        "title": initiative.text("title", language),
        "subject": initiative.text("subject", language),
        "objectives": initiative.text("objectives", language),
        "destruction_deadline": statements_destroyed_at_the_latest(initiative),
        # The privacy notice names the controllers (REQ-16, REQ-17): the organisers, through their contact
        # persons as the register publishes them, and the operator as joint controller.
        "contact_persons": [
            person
            for person in initiative.contact_persons or []
            if isinstance(person, dict) and (person.get("name") or person.get("email"))
        ],
        "operator_name": settings.OPERATOR_NAME,
        "operator_contact_email": settings.OPERATOR_CONTACT_EMAIL,
        # The ALTCHA widget's own texts, in its names for the languages.
        "widget_language": WIDGET_LANGUAGES.get(language, language),
    }


def log_attempt(initiative: Initiative, country: str, outcome: str, address: str) -> None:
    """One line and one count per attempt: initiative, country, outcome and the client's network (/24 or
    /48); never a name, date, number or full address."""
    STATEMENT_ATTEMPTS.labels(outcome=outcome, initiative=initiative.slug).inc()
    if not logger.isEnabledFor(logging.INFO):
        return
    logger.info(
        "statement attempt: initiative=%s country=%s outcome=%s network=%s",
        initiative.slug,
        country,
        outcome,
        truncated_address(address),
    )


def statement_of_form(form: StatementForm, country: str) -> Statement:
    """Store the statement a valid form holds (DuplicateStatementError if this person signed)."""
    return statement_record(
        country=country,
        personal_data=form.personal_data(),
        form_revision=FORM_REVISION,
        contact_email=form.contact_email(),
    )


def receipt_redirect(statement: Statement, language: str) -> HttpResponseRedirect:
    """The answer to an accepted statement: See Other, so the receipt is fetched with GET, never re-posted."""
    see_receipt = HttpResponseRedirect(f"/receipt/{statement.pk}/?lang={language}")
    see_receipt.status_code = 303
    return see_receipt


def proof_cost(initiative: Initiative, harder: bool) -> int:
    return int(initiative.proof_of_work_cost * (settings.ALTCHA_HARDER_FACTOR if harder else 1))


@require_safe
@never_cache
def altcha_challenge(request: HttpRequest) -> JsonResponse:
    """GET /altcha/challenge.json: a fresh proof-of-work challenge, harder for a client that signs a lot."""
    initiative = request.tenant  # type: ignore[attr-defined]
    pressure = signing_pressure(initiative.pk, client_address(request))
    return JsonResponse(challenge_create(initiative.pk, proof_cost(initiative, pressure.harder_proof)))


@require_safe
def sign_choose(request: HttpRequest) -> HttpResponse:
    """GET /sign/: nationality (the Member State the statement counts for, REQ-15) and language."""
    initiative = request.tenant  # type: ignore[attr-defined]
    language = chosen_language(request, initiative.registered_language)
    translation.activate(language)
    country = request.GET.get("country", "").upper()
    if member_state(country) is not None:
        return redirect(f"/sign/{country}/?lang={language}")
    context = {
        **_initiative_context(initiative, language),
        "nationalities": nationality_choices(language),
        "all_languages": settings.LANGUAGES,
    }
    return render(request, "collection/sign_choose.html", context)


@never_cache
def sign_form(request: HttpRequest, country: str) -> HttpResponse:
    """GET shows the country's Annex III form; POST validates, checks and stores the statement."""
    initiative = request.tenant  # type: ignore[attr-defined]
    state = member_state(country)
    if state is None or country != country.upper():
        raise Http404("No such Member State.")
    if request.method not in ("GET", "HEAD", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    lane_error = request.META.get(LANE_ERROR)
    if lane_error is not None and request.method == "POST":
        raise lane_error
    language = chosen_language(request, initiative.registered_language)
    translation.activate(language)

    def context() -> dict[str, object]:
        # Built only for a page: an accepted statement answers with a bare redirect.
        return {
            **_initiative_context(initiative, language),
            "member_state": state,
            "country_name": country_name(state.code, language),
        }

    today = timezone.localdate()
    if not collection_open(initiative, today):
        if request.method == "POST":
            log_attempt(initiative, state.code, "closed", client_address(request))
        return render(request, "collection/collection_closed.html", context(), status=410)

    form = StatementForm(request.POST or None, member_state=state, signing_day=today)
    if request.method != "POST":
        return render(request, "collection/sign_form.html", {**context(), "form": form})
    address = client_address(request)
    proof = proof_verify(initiative.pk, request.POST.get("altcha", ""))
    attempt = request.META.get(LANE_ATTEMPT) or signing_attempt_register(initiative.pk, address, proof=proof)
    if not attempt.decision.allowed:
        log_attempt(initiative, state.code, "rate-limited", address)
        response = render(request, "collection/rate_limited.html", context(), status=429)
        response["Retry-After"] = str(attempt.decision.retry_after)
        return response
    verdict = proof_judge(
        proof,
        minimum_cost=proof_cost(initiative, attempt.decision.harder_proof),
        first_use=attempt.proof_first_use,
    )
    if verdict != "ok":
        log_attempt(initiative, state.code, f"proof-{verdict}", address)
        refused = {**context(), "form": form, "proof_refused": True}
        return render(request, "collection/sign_form.html", refused, status=403)
    if not form.is_valid():
        log_attempt(initiative, state.code, "invalid", address)
        return render(request, "collection/sign_form.html", {**context(), "form": form}, status=400)
    try:
        if request.META.get(LANE_DUPLICATE):
            raise DuplicateStatementError
        statement = statement_of_form(form, state.code)
    except DuplicateStatementError:
        log_attempt(initiative, state.code, "duplicate", address)
        return render(request, "collection/duplicate.html", context(), status=409)
    log_attempt(initiative, state.code, "accepted", address)
    return receipt_redirect(statement, language)


@require_safe
@never_cache
def receipt(request: HttpRequest, statement_id: uuid.UUID) -> HttpResponse:
    initiative = request.tenant  # type: ignore[attr-defined]
    language = chosen_language(request, initiative.registered_language)
    translation.activate(language)
    if not statement_exists(statement_id):
        raise Http404("No such statement.")
    context = {**_initiative_context(initiative, language), "statement_id": statement_id}
    return render(request, "collection/receipt.html", context)


@require_safe
def counts_api(request: HttpRequest) -> HttpResponse:
    """GET /api/counts.json: the last published counts with each Member State's threshold (REQ-02); kept
    by collection.public_cache."""
    initiative = request.tenant  # type: ignore[attr-defined]
    progress = progress_published(initiative, counts_published())
    response = JsonResponse(
        {
            "total": progress.total,
            "counted_at": progress.counted_at,
            "countries": {
                state.code: {"count": state.count, "threshold": state.threshold} for state in progress.states
            },
        }
    )
    patch_cache_control(response, public=True, max_age=settings.PUBLIC_MAX_AGE_SECONDS)
    return response
