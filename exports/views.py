"""The organisers' export pages on an initiative's site, under /manage/: sign in and out, request exports,
follow the jobs, download finished files through short-lived links. Thin: parse, call one service or
selector, render. Every page but sign-in and sign-out is behind `organiser_required`."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import LoginView, LogoutView
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from collection.forms import nationality_choices
from exports.access import (
    current_initiative,
    manage_context,
    manage_language_activate,
    organiser_required,
)
from exports.contact_emails import ContactEmailsGoneError, contact_emails_download
from exports.downloads import (
    DownloadKind,
    ExportDownloadUnavailableError,
    export_download_authorize,
    export_download_filename,
    export_download_link_create,
    export_download_open,
)
from exports.forms import ALL_COUNTRIES, DownloadLinkForm, ExportRequestForm, OrganiserAuthenticationForm
from exports.models import ExportJob
from exports.second_factor_views import second_factor_fresh, second_factor_fresh_download
from exports.selectors import (
    export_batches_recent,
    export_job_done,
    export_jobs_recent,
    export_jobs_unfinished_exist,
    export_unavailable_reason,
)
from exports.services import ExportRefusedError, export_request
from tenants.second_factor import pending_start
from tenants.sessions import see_other
from tenants.throttle import (
    retry_after_text,
    signin_attempt_register,
    signin_refusal_report,
    signin_succeeded,
)

# While a job is queued or running the page reloads itself this often (no script: CSP forbids inline).
REFRESH_SECONDS = 5


def _actor(request: HttpRequest) -> str:
    return request.user.get_username()


def _user_id(request: HttpRequest) -> int:
    # Behind organiser_required: a signed-in user.
    return int(request.user.pk)  # type: ignore[arg-type]


class OrganiserLoginView(LoginView):
    """GET /manage/login/, POST to sign in. Throttled (tenants/throttle.py): while a delay runs it answers
    429 without trying the password. Staff accounts are refused (OrganiserAuthenticationForm)."""

    template_name = "manage/login.html"
    authentication_form = OrganiserAuthenticationForm

    def get_default_redirect_url(self) -> str:
        return reverse("manage-dashboard")

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        manage_language_activate()
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), **manage_context(self.request)}

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        attempt = signin_attempt_register(request, request.POST.get("username", ""))
        if not attempt.allowed:
            wait = retry_after_text(attempt.retry_after)
            response = self.render_to_response(self.get_context_data(form=self.get_form(), blocked=wait))
            response.status_code = 429
            response["Retry-After"] = str(attempt.retry_after)
            return response
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: OrganiserAuthenticationForm) -> HttpResponse:  # type: ignore[override]
        # The password is right; nobody is signed in before the second factor (the code step).
        pending_start(
            self.request,
            form.get_user(),
            site=current_initiative(self.request).schema_name,
            next_url=self.get_success_url(),
        )
        signin_succeeded(self.request, self.request.POST.get("username", ""))
        return HttpResponseRedirect(reverse("manage-login-code"))

    def form_invalid(self, form: OrganiserAuthenticationForm) -> HttpResponse:  # type: ignore[override]
        if form.get_user() is not None:  # the password was right, the account may not sign in here
            signin_refusal_report(self.request, self.request.POST.get("username", ""))
        response = super().form_invalid(form)
        response.status_code = 400
        return response


class OrganiserLogoutView(LogoutView):
    """POST /manage/logout/: ends the session, back to the sign-in page."""

    def get_default_redirect_url(self) -> str:
        return reverse("manage-login")


def _exports_page(
    request: HttpRequest, form: ExportRequestForm, *, refusal: str = "", status: int = 200
) -> HttpResponse:
    names = dict(nationality_choices("en"))
    # While exports are not possible the page says why instead of offering a form that would fail.
    unavailable = export_unavailable_reason(current_initiative(request))
    context = manage_context(
        request,
        form=form,
        refusal=refusal,
        unavailable=unavailable,
        rows=[(job, names.get(job.country, job.country)) for job in export_jobs_recent()],
        batches=export_batches_recent(),
        refresh_seconds=REFRESH_SECONDS if export_jobs_unfinished_exist() else None,
    )
    return render(request, "manage/exports.html", context, status=status)


def _requested_message(country: str, jobs: list[ExportJob]) -> str:
    listed = ", ".join(f"job {job.pk} ({job.country})" for job in jobs)
    if country == ALL_COUNTRIES:
        batch = jobs[0].batch_id if jobs else None
        return f"Export of all countries with statements requested as batch {batch}: {listed}."
    return f"Export requested: {listed}."


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
@organiser_required
@second_factor_fresh
def exports_page(request: HttpRequest) -> HttpResponse:
    """GET /manage/exports/: the request form (or, before collection has closed and after a withdrawal
    or destruction, why there is none), the jobs and the batches. POST requests an export: 303 back with
    a message naming the jobs, or 400 with the reason next to the form (nothing is created)."""
    if request.method != "POST":
        return _exports_page(request, ExportRequestForm())
    form = ExportRequestForm(request.POST)
    if not form.is_valid():
        return _exports_page(request, form, status=400)
    country = form.cleaned_data["country"]
    try:
        jobs = export_request(country=country, actor=_actor(request))
    except ExportRefusedError as error:
        return _exports_page(request, form, refusal=str(error), status=400)
    messages.success(request, _requested_message(country, jobs))
    return see_other(reverse("manage-exports"))


def _not_found(request: HttpRequest, job_id: int) -> HttpResponse:
    return render(request, "manage/export_not_found.html", manage_context(request, job_id=job_id), status=404)


@never_cache
@require_POST
@organiser_required
@second_factor_fresh
def export_link_create(request: HttpRequest, job_id: int) -> HttpResponse:
    """POST /manage/exports/<job>/link/ (kind=file|manifest): a new short-lived link, on a page of its
    own. Not a redirect: the Content-Security-Policy's form-action would stop a form's redirect chain at
    the storage's own host (S3), whereas following a link is a plain navigation."""
    form = DownloadLinkForm(request.POST)
    if not form.is_valid():
        return HttpResponse(form.errors["kind"][0], status=400, content_type="text/plain; charset=utf-8")
    job = export_job_done(job_id)
    if job is None:
        return _not_found(request, job_id)
    kind = DownloadKind(form.cleaned_data["kind"])
    link = export_download_link_create(
        initiative=current_initiative(request),
        job=job,
        user_id=_user_id(request),
        actor=_actor(request),
        kind=kind,
    )
    context = manage_context(
        request,
        job=job,
        link=link,
        what="file" if kind == DownloadKind.FILE else "manifest",
        filename=export_download_filename(job, kind),
        minutes=max(1, settings.EXPORT_DOWNLOAD_LINK_SECONDS // 60),
    )
    return render(request, "manage/download_link.html", context)


@never_cache
@require_GET
@organiser_required
def export_download(request: HttpRequest, job_id: int, token: str, kind: str) -> HttpResponseBase:
    """GET /manage/exports/<job>/download/<token>/ (or manifest/<token>/): the file, streamed from the
    local storage or by a 303 to the storage's own short-lived URL (S3)."""
    initiative = current_initiative(request)
    download_kind = DownloadKind(kind)
    if not export_download_authorize(
        token=token, initiative=initiative, job_id=job_id, user_id=_user_id(request), kind=download_kind
    ):
        return render(request, "manage/link_expired.html", manage_context(request), status=403)
    job = export_job_done(job_id)
    if job is None:
        return _not_found(request, job_id)
    try:
        download = export_download_open(
            initiative=initiative, job=job, actor=_actor(request), kind=download_kind
        )
    except ExportDownloadUnavailableError:
        return _not_found(request, job_id)
    if download.url is not None:
        return see_other(download.url)
    assert download.path is not None
    try:
        opened = download.path.open("rb")
    except FileNotFoundError:  # removed since it was looked up
        return _not_found(request, job_id)
    response = FileResponse(
        opened,
        as_attachment=True,
        filename=download.filename,
        content_type=download.content_type,
    )
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
@organiser_required
@second_factor_fresh_download
def contact_emails_csv(request: HttpRequest) -> HttpResponseBase:
    """GET /manage/emails.csv: the consenting signatories' e-mail addresses (REQ-19) as CSV, streamed,
    until their deadline; afterwards, or once destroyed, 410 with a page that says so. The second factor
    again first if it is older than 15 minutes (POSTed back here)."""
    try:
        download = contact_emails_download(
            current_initiative(request), actor=_actor(request), today=timezone.localdate()
        )
    except ContactEmailsGoneError as gone:
        context = manage_context(request, status=gone.status)
        return render(request, "manage/emails_gone.html", context, status=410)
    response = StreamingHttpResponse(download.lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, download.filename) or "attachment"
    response["Cache-Control"] = "no-store"
    return response
