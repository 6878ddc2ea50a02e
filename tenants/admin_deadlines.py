"""The operator console's deadline panels (REQ-18, REQ-19, REQ-25): columns for the initiatives' list, a
panel on an initiative's page with its holds and destruction records (a panel, not inlines: inlines would
add management forms every save of the page must post), pages to set and lift a legal hold, and read-only
lists of holds and destruction records. Registered on the console by tenants/admin.py."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from tenants.deadlines import DeadlinePanel, initiative_deadline_panel
from tenants.forms import LegalHoldLiftForm, LegalHoldSetForm
from tenants.holds import LegalHoldError, legal_hold_lift, legal_hold_set
from tenants.models import DestructionRecord, Initiative, LegalHold

# Who may set and lift holds: Django's permissions on the hold model (a superuser has them).
SET_PERMISSION = "tenants.add_legalhold"
LIFT_PERMISSION = "tenants.change_legalhold"
# What a column shows for no date or no hold, as the admin does.
EMPTY = "\N{EN DASH}"


def _date(value: Any) -> str:
    return f"{value:%Y-%m-%d}" if value is not None else EMPTY


class _ReadOnly:
    """Records the platform writes itself: shown, never added, edited or deleted by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DeadlinesConsoleMixin:
    """For InitiativeAdmin: list columns, the change page's panel and the hold pages."""

    admin_site: admin.AdminSite

    # -- the list ------------------------------------------------------------------------------------------

    @staticmethod
    def _panel(initiative: Initiative) -> DeadlinePanel:
        # Computed once per row object: the columns below all read it.
        panel: DeadlinePanel | None = getattr(initiative, "_deadline_panel", None)
        if panel is None:
            panel = initiative_deadline_panel(initiative, today=timezone.localdate())
            initiative._deadline_panel = panel  # type: ignore[attr-defined]
        return panel

    @admin.display(description="send to authorities by (REQ-25)")
    def submission_deadline(self, initiative: Initiative) -> str:
        panel = self._panel(initiative)
        submission = panel.deadlines.authorities_submission
        if submission is None:
            return EMPTY
        if panel.submission_due_soon:
            label = "overdue" if panel.submission_overdue else "due soon"
            return format_html(
                '<strong class="deadline-warning">⚠ {} ({})</strong>', _date(submission), label
            )
        return _date(submission)

    @admin.display(description="statements destroyed by (REQ-18)")
    def statements_deadline(self, initiative: Initiative) -> str:
        deadlines = self._panel(initiative).deadlines
        if deadlines.statements_destroyed is not None:
            return f"destroyed {_date(deadlines.statements_destroyed.finished_at)}"
        return _date(deadlines.statements_destruction)

    @admin.display(description="e-mail addresses destroyed by (REQ-19)")
    def emails_deadline(self, initiative: Initiative) -> str:
        deadlines = self._panel(initiative).deadlines
        if deadlines.emails_destroyed is not None:
            return f"destroyed {_date(deadlines.emails_destroyed.finished_at)}"
        return _date(deadlines.emails_destruction)

    @admin.display(description="legal hold")
    def legal_hold(self, initiative: Initiative) -> str:
        hold = self._panel(initiative).deadlines.active_hold
        return hold.reference if hold is not None else EMPTY

    @admin.display(description="destruction records", boolean=True)
    def destruction_recorded(self, initiative: Initiative) -> bool:
        return bool(self._panel(initiative).destruction_records)

    # -- the change page -----------------------------------------------------------------------------------

    @admin.display(description="deadlines, holds and destruction")
    def deadlines_panel(self, initiative: Initiative) -> SafeString:
        if initiative.pk is None:
            return SafeString(EMPTY)
        context = {
            "initiative": initiative,
            "panel": self._panel(initiative),
            "set_url": reverse(f"{self.admin_site.name}:tenants_initiative_hold_set", args=[initiative.pk]),
            "lift_url": reverse(f"{self.admin_site.name}:tenants_initiative_hold_lift", args=[initiative.pk]),
        }
        return SafeString(render_to_string("operator/_deadlines.html", context))

    # -- setting and lifting a hold ------------------------------------------------------------------------

    def hold_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:pk>/hold/",
                self.admin_site.admin_view(self.hold_set_view),
                name="tenants_initiative_hold_set",
            ),
            path(
                "<int:pk>/hold/lift/",
                self.admin_site.admin_view(self.hold_lift_view),
                name="tenants_initiative_hold_lift",
            ),
        ]

    def _hold_page(
        self, request: HttpRequest, initiative: Initiative, form: Any, title: str, submit: str, intro: str
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "form": form,
            "opts": Initiative._meta,
            "submit_label": submit,
            "intro": intro,
        }
        status = 400 if request.method == "POST" else 200
        return TemplateResponse(request, "operator/form.html", context, status=status)

    def _back(self, initiative: Initiative) -> HttpResponseRedirect:
        return HttpResponseRedirect(
            reverse(f"{self.admin_site.name}:tenants_initiative_change", args=[initiative.pk])
        )

    def hold_set_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        initiative = _initiative_allowed(request, pk, SET_PERMISSION)
        if isinstance(initiative, HttpResponse):
            return initiative
        form = LegalHoldSetForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                hold = legal_hold_set(
                    initiative,
                    reason=form.cleaned_data["reason"],
                    reference=form.cleaned_data["reference"],
                    actor=request.user.get_username(),
                )
            except LegalHoldError as error:
                form.add_error(error.field if error.field in form.fields else None, str(error))
            else:
                messages.success(
                    request,
                    f"{initiative.slug}: legal hold set (reference {hold.reference}); its statements are "
                    "kept past their deadline until it is lifted.",
                )
                return self._back(initiative)
        deadline = initiative_deadline_panel(initiative, today=timezone.localdate()).deadlines
        intro = (
            f"{initiative.slug} ({initiative.registration_number}): its statements are due for destruction "
            f"on {_date(deadline.statements_destruction)} (REQ-18). A legal hold keeps them, for legal or "
            "administrative proceedings only, until it is lifted; the reason and reference are recorded."
        )
        return self._hold_page(
            request, initiative, form, f"Set a legal hold on {initiative.slug}", "Set the hold", intro
        )

    def hold_lift_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        initiative = _initiative_allowed(request, pk, LIFT_PERMISSION)
        if isinstance(initiative, HttpResponse):
            return initiative
        form = LegalHoldLiftForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                hold = legal_hold_lift(
                    initiative, actor=request.user.get_username(), reason=form.cleaned_data["reason"]
                )
            except LegalHoldError as error:
                form.add_error(error.field if error.field in form.fields else None, str(error))
            else:
                messages.success(
                    request,
                    f"{initiative.slug}: legal hold (reference {hold.reference}) lifted; the statements are "
                    "destroyed by the next daily run if their deadline has passed.",
                )
                return self._back(initiative)
        panel = initiative_deadline_panel(initiative, today=timezone.localdate())
        active = panel.deadlines.active_hold
        if active is None:
            intro = f"{initiative.slug} has no active legal hold."
        else:
            intro = (
                f"Active hold on {initiative.slug}: reference {active.reference}, set by {active.set_by} on "
                f"{_date(active.set_at)}. Once lifted, its statements are destroyed by the next daily run if "
                f"their deadline ({_date(panel.deadlines.statements_destruction)}) has passed."
            )
        return self._hold_page(
            request, initiative, form, f"Lift the legal hold on {initiative.slug}", "Lift the hold", intro
        )


class LegalHoldAdmin(_ReadOnly, admin.ModelAdmin):
    """Every hold, active and lifted; set and lifted from an initiative's page or `legal_hold`."""

    list_display = ("initiative", "reference", "active", "set_by", "set_at", "lifted_by", "lifted_at")
    list_filter = ("lifted_at",)
    search_fields = ("initiative__slug", "reference")
    readonly_fields = [field.name for field in LegalHold._meta.fields]

    @admin.display(boolean=True, description="active")
    def active(self, hold: LegalHold) -> bool:
        return hold.is_active


class DestructionRecordAdmin(_ReadOnly, admin.ModelAdmin):
    """What the destruction runs destroyed, kept for good (also after the initiative is gone)."""

    list_display = (
        "initiative_slug",
        "registration_number",
        "scope",
        "deadline",
        "started_at",
        "finished_at",
        "files_deleted",
        "rows_deleted",
    )
    list_filter = ("scope",)
    search_fields = ("initiative_slug", "registration_number")
    readonly_fields = [field.name for field in DestructionRecord._meta.fields]


def _initiative_allowed(request: HttpRequest, pk: int, permission: str) -> Initiative | HttpResponse:
    """The initiative a hold page acts on, or the answer when the user may not or it does not exist."""
    if not request.user.has_perm(permission):
        return HttpResponse(status=403)
    initiative = Initiative.objects.filter(pk=pk).first()
    return initiative if initiative is not None else HttpResponse(status=404)
