"""Public pages of an initiative's site. Thin: pick the language, read, render."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import translation
from django.utils.translation.trans_real import parse_accept_lang_header
from django.views.decorators.http import require_safe

from collection.selectors import counts_published

EU_LANGUAGE_CODES = {code for code, _name in settings.LANGUAGES}


def chosen_language(request: HttpRequest, registered_language: str) -> str:
    """The visitor's explicit choice (?lang=), else the browser's, else the registered language."""
    asked = request.GET.get("lang", "")
    if asked in EU_LANGUAGE_CODES:
        return asked
    for accepted, _quality in parse_accept_lang_header(request.headers.get("Accept-Language", "")):
        base = accepted.split("-", 1)[0].lower()
        if base in EU_LANGUAGE_CODES:
            return base
    return registered_language


@require_safe
def initiative_home(request: HttpRequest) -> HttpResponse:
    initiative = request.tenant  # type: ignore[attr-defined]
    language = chosen_language(request, initiative.registered_language)
    translation.activate(language)
    counts = counts_published()
    context = {
        "initiative": initiative,
        "language": language,
        "title": initiative.text("title", language),
        "subject": initiative.text("subject", language),
        "objectives": initiative.text("objectives", language),
        "languages": [(code, name) for code, name in settings.LANGUAGES if code in initiative.languages],
        "total": counts["total"] if counts else 0,
    }
    response = render(request, "collection/initiative_home.html", context)
    response.headers["Content-Language"] = language
    return response
