"""The signing lane: a statement of support that is accepted (POST /sign/<CC>/ on an initiative's site)
is served ahead of Django's URL routing and middleware chain, which cost more CPU than the statement
itself (issue 16; the profile is in bench/README.md). The checks are the same ones, in the same order,
with the same answer:

- the request is observed (id, log context, latency, access line) by eci_platform.request_observation;
- the host is routed by tenants.selectors.initiative_for_host, as InitiativeHostMiddleware does;
- the security, common, CSRF, frame-options and CSP middleware's own hooks run on it (instances of the
  same classes as in MIDDLEWARE, not copies of their logic);
- the form is the view's StatementForm; the proof of work, the rate limits, the insert and the attempt's
  log line are the view's functions.

Anything else goes to Django untouched, before any side effect: another method, host or path, an invalid
form, a missing or invalid proof, a closed collection, a CSRF failure. Once the attempt is counted and
its proof spent (one Redis round trip) an answer other than "accepted" (rate limited, proof replayed,
duplicate) or an error goes to the view with what the lane learnt (LANE_ATTEMPT, LANE_ERROR), so that a
proof is never spent twice and an error gets Django's 503 or 500 page. WSGI environ keys without the
HTTP_ prefix are the server's: a client cannot set them.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils import timezone, translation
from django.utils.http import http_date

from collection.antibot import proof_judge, proof_verify
from collection.forms import StatementForm
from collection.ratelimit import client_address, signing_attempt_register
from collection.selectors import collection_open
from collection.services import DuplicateStatementError
from collection.views import (
    LANE_ATTEMPT,
    LANE_DUPLICATE,
    LANE_ERROR,
    chosen_language,
    log_attempt,
    proof_cost,
    receipt_redirect,
    sign_form,
    statement_of_form,
)
from eci_platform.areas import public_page_vary
from eci_platform.csp import SettingsPolicyCSPMiddleware
from eci_platform.request_observation import (
    LANE_REQUEST_ID,
    LANE_STARTED,
    request_observation_begin,
    request_observation_end,
)
from regulation.member_states import member_state
from tenants.db import schema_use
from tenants.models import Initiative
from tenants.selectors import initiative_for_host

NEVER_CACHE = "max-age=0, no-cache, no-store, must-revalidate, private"
SIGN_PATH = re.compile(r"/sign/([A-Z]{2})/\Z")
# A filled-in form is under 2 KB; a larger body is Django's to judge (DATA_UPLOAD_MAX_MEMORY_SIZE).
BODY_LIMIT = 16 * 1024
VIEW_NAME = "sign-form"
# What a browser sends a form as (urlencoded; multipart from Django's test client), parsed by Django.
FORM_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _not_called(request: HttpRequest) -> HttpResponse:
    raise AssertionError("the lane runs the middleware's hooks, never its chain")


class _CsrfVerdict(CsrfViewMiddleware):
    """Django's CSRF checks, with a refusal left to Django's own run of the middleware: it logs the
    refusal and renders the failure page once, as for any other request."""

    def _reject(self, request: HttpRequest, reason: str) -> HttpResponse:
        return HttpResponse(status=403)


class SigningLane:
    def __init__(self) -> None:
        self.security = SecurityMiddleware(_not_called)
        self.common = CommonMiddleware(_not_called)
        self.csrf = _CsrfVerdict(_not_called)
        self.frame_options = XFrameOptionsMiddleware(_not_called)
        self.csp = SettingsPolicyCSPMiddleware(_not_called)

    def respond(
        self, environ: dict[str, Any], *, enforce_csrf_checks: bool = True
    ) -> HttpResponseBase | None:
        """The answer to an accepted statement, or None: Django answers (with the body still to read)."""
        if environ.get("REQUEST_METHOD") != "POST":
            return None
        found = SIGN_PATH.match(environ.get("PATH_INFO", ""))
        if found is None or not environ.get("CONTENT_TYPE", "").startswith(FORM_CONTENT_TYPES):
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None
        if not 0 < length <= BODY_LIMIT:
            return None
        try:
            body = environ["wsgi.input"].read(length)
        except OSError:
            # The client went away mid-body: Django reads what is left and answers as it does then.
            return None
        environ["wsgi.input"] = io.BytesIO(body)
        request = WSGIRequest(environ)
        # The test client's switch (django.test.Client(enforce_csrf_checks=False)); never set in serving.
        request._dont_enforce_csrf_checks = not enforce_csrf_checks  # type: ignore[attr-defined]
        started, request_id = request_observation_begin(request)
        try:
            response = self._accepted(request, environ, found.group(1))
        except Exception as error:
            environ[LANE_ERROR] = error
            response = None
        if response is None:
            environ["wsgi.input"] = io.BytesIO(body)  # unread, for Django
            # One id and one clock for the request, whoever answers it.
            environ[LANE_REQUEST_ID] = request_id
            environ[LANE_STARTED] = started
            return None
        request_observation_end(request, response, started, request_id, view=VIEW_NAME)
        response.wsgi_request = request  # type: ignore[attr-defined]  # as Django's test client has it
        return response

    def _initiative(self, request: HttpRequest) -> Initiative | None:
        try:
            hostname = request.get_host().rsplit(":", 1)[0].lower().rstrip(".")
        except DisallowedHost:
            return None
        if hostname == settings.PLATFORM_DOMAIN:
            return None
        initiative = initiative_for_host(hostname)
        if initiative is None:
            return None
        initiative.domain_url = hostname  # type: ignore[assignment]
        request.tenant = initiative  # type: ignore[attr-defined]
        schema_use(initiative)
        return initiative

    def _accepted(
        self, request: HttpRequest, environ: dict[str, Any], country: str
    ) -> HttpResponseBase | None:
        # MIDDLEWARE's order: security (HTTPS redirect), host routing, common, then the view's CSRF check.
        if self.security.process_request(request) is not None:
            return None
        initiative = self._initiative(request)
        state = member_state(country)
        if initiative is None or state is None or self.common.process_request(request) is not None:
            return None
        language = chosen_language(request, initiative.registered_language)
        translation.activate(language)
        today = timezone.localdate()
        if not collection_open(initiative, today):
            return None
        if self.csrf.process_view(request, sign_form, (), {"country": country}) is not None:
            return None
        form = StatementForm.to_validate(request.POST, member_state=state, signing_day=today)
        if not form.is_valid():
            return None
        proof = proof_verify(initiative.pk, request.POST.get("altcha", ""))
        if not proof.solved:
            return None
        address = client_address(request)
        # The attempt is counted and its proof spent from here on: Django takes over with that.
        attempt = signing_attempt_register(initiative.pk, address, proof=proof)
        minimum_cost = proof_cost(initiative, attempt.decision.harder_proof)
        if (
            not attempt.decision.allowed
            or proof_judge(proof, minimum_cost=minimum_cost, first_use=attempt.proof_first_use) != "ok"
        ):
            environ[LANE_ATTEMPT] = attempt
            return None
        try:
            statement = statement_of_form(form, state.code)
        except DuplicateStatementError:
            environ[LANE_ATTEMPT] = attempt
            environ[LANE_DUPLICATE] = True  # the view answers 409 without sealing and inserting again
            return None
        log_attempt(initiative, state.code, "accepted", address)
        response: Any = receipt_redirect(statement, language)
        # add_never_cache_headers' result, without parsing and re-joining an empty Cache-Control.
        response["Expires"] = http_date()
        response["Cache-Control"] = NEVER_CACHE
        # The response hooks in MIDDLEWARE's reverse order (the public cache and WhiteNoise have none for
        # a POST; the signed-in areas' middleware adds Vary to a public page).
        for hook in (self.csp, self.frame_options, self.csrf, self.common):
            response = hook.process_response(request, response)
        public_page_vary(response)
        return self.security.process_response(request, response)


class SigningLaneApplication:
    """The WSGI application: the lane first, Django's handler for everything else."""

    def __init__(self, django_application: Callable[..., Iterable[bytes]]) -> None:
        self.django_application = django_application
        self.lane = SigningLane()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "POST" and SIGN_PATH.match(environ.get("PATH_INFO", "")):
            # What Django's handler does first: connections past their age or broken are closed.
            signals.request_started.send(sender=self.__class__, environ=environ)
            response = self.lane.respond(environ)
            if response is not None:
                # Closing the response (the server does) sends request_finished, as for Django's answers.
                response._handler_class = self.__class__  # type: ignore[attr-defined]
                cookies = [("Set-Cookie", cookie.output(header="")) for cookie in response.cookies.values()]
                start_response(
                    f"{response.status_code} {response.reason_phrase}", [*response.items(), *cookies]
                )
                return response
        return self.django_application(environ, start_response)
