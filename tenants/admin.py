"""The operator console on the platform domain at /operator/: Django's admin, for operator staff only."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.forms import UserChangeForm
from django.contrib.auth.models import Group, User
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path, reverse
from django.utils import timezone

from tenants.admin_deadlines import (
    DeadlinesConsoleMixin,
    DestructionRecordAdmin,
    LegalHoldAdmin,
)
from tenants.admin_organisers import organiser_urls
from tenants.admin_overview import PublishedCountsMixin, overview_urls
from tenants.admin_second_factor import (
    OperatorSecondFactor,
    operator_login,
    second_factor_urls,
)
from tenants.admin_second_factor import (
    OperatorUserAdmin as SecondFactorUserAdmin,
)
from tenants.admin_submission import submission_urls
from tenants.authorities import (
    AuthorityError,
    NotificationError,
    SameOperatorError,
    authority_confirm,
    authority_problem,
    authority_register,
    fingerprint_shown,
)
from tenants.forms import (
    AuthorityConfirmationForm,
    AuthorityRegistrationForm,
    OnboardingForm,
    RegisterCorrectionForm,
)
from tenants.models import (
    AuditEvent,
    CompetentAuthority,
    DataKey,
    DestructionRecord,
    Initiative,
    InitiativeState,
    KeyEncryptionKey,
    LegalHold,
    ReencryptionJob,
)
from tenants.onboarding import OnboardingError, initiative_onboard
from tenants.register import REGISTER_FIELDS
from tenants.roles import ORGANISER_CANNOT_BE_STAFF, user_organises, user_privileged
from tenants.second_factor import is_verified
from tenants.services import (
    EDITABLE_DETAILS,
    RegisterCorrectionError,
    RegisterTextsFrozenError,
    TransitionError,
    initiative_details_save,
    initiative_register_correct,
    initiative_transition,
)


class OperatorSite(admin.AdminSite):
    site_header = "ECI platform: operator console"
    site_title = "Operator console"
    index_title = "Initiatives and audit log"
    index_template = "operator/index.html"  # links the platform overview

    def has_permission(self, request: HttpRequest) -> bool:
        # Signed in with both factors: a password alone reaches no page (tenants/second_factor.py).
        user = request.user
        return bool(user.is_active and user.is_staff and is_verified(request))

    def login(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        return operator_login(self, request, extra_context)

    def get_urls(self) -> list[URLResolver | URLPattern]:
        return [*second_factor_urls(self, operator_second_factor), *overview_urls(self), *super().get_urls()]


operator_site = OperatorSite(name="operator")
operator_second_factor = OperatorSecondFactor(operator_site)


def _transition_action(to_state: str, label: str) -> Any:
    def action(modeladmin: InitiativeAdmin, request: HttpRequest, queryset: QuerySet[Initiative]) -> None:
        for initiative in queryset:
            try:
                initiative_transition(
                    initiative, to_state, actor=request.user.get_username(), reason="operator console"
                )
            except TransitionError as error:
                modeladmin.message_user(request, f"{initiative.slug}: {error}", messages.ERROR)
            else:
                modeladmin.message_user(request, f"{initiative.slug}: now {to_state}.", messages.SUCCESS)

    action.allowed_permissions = ("change",)  # type: ignore[attr-defined]  # not for view-only staff
    action.__name__ = f"make_{to_state}"
    action.short_description = label  # type: ignore[attr-defined]
    return action


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DataKeyInline(ReadOnlyInline):
    """Key versions and their states; never the wrapped key."""

    model = DataKey
    fields = (
        "purpose",
        "version",
        "state",
        "kek",
        "created_at",
        "primary_since",
        "retired_at",
        "destroyed_at",
    )
    readonly_fields = fields
    ordering = ("purpose", "version")


class KeyEncryptionKeyInline(ReadOnlyInline):
    model = KeyEncryptionKey
    fields = ("id", "provider", "created_at", "retired_at", "destroyed_at")
    readonly_fields = fields


@admin.register(Initiative, site=operator_site)
class InitiativeAdmin(DeadlinesConsoleMixin, PublishedCountsMixin, admin.ModelAdmin):
    inlines = [KeyEncryptionKeyInline, DataKeyInline]
    list_display = (
        "slug",
        "registration_number",
        "state",
        "primary_domain",
        "collection_start",
        "collection_end",
        "schema_name",
        # The published counts, as the public pages show them (tenants/admin_overview.py).
        "statements_published",
        "states_at_threshold",
        # REQ-25, REQ-18, REQ-19: the next deadlines, the hold and the records (tenants/admin_deadlines.py).
        "submission_deadline",
        "statements_deadline",
        "emails_deadline",
        "legal_hold",
        "destruction_recorded",
    )
    list_filter = ("state",)
    search_fields = ("slug", "registration_number")
    change_form_template = "operator/initiative_change_form.html"  # links Annex VII, the correction
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    readonly_fields = (
        "slug",
        "schema_name",
        "registration_number",
        "registered_on",
        "state",
        "state_changed_at",
        "collection_start",
        "collection_opened_on",
        "submitted_on",
        "withdrawn_on",
        "created_at",
        "deadlines_panel",
        "counts_panel",
    )
    fields = (*readonly_fields, *EDITABLE_DETAILS)
    actions = [
        _transition_action(InitiativeState.PAUSED, "Pause collection"),
        _transition_action(InitiativeState.COLLECTING, "Resume or open collection"),
        _transition_action(InitiativeState.CLOSED, "Close collection"),
        _transition_action(InitiativeState.SUBMITTED, "Mark as submitted to the Commission"),
        _transition_action(InitiativeState.WITHDRAWN, "Mark as withdrawn"),
    ]

    @admin.display(description="domain")
    def primary_domain(self, initiative: Initiative) -> str:
        domains = list(initiative.domains.all())
        return ", ".join(domain.domain for domain in domains if domain.is_primary)

    @admin.display(description="collection end")
    def collection_end(self, initiative: Initiative) -> str:
        return initiative.collection_end.isoformat()

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # REQ-10: once collection opened, the register data changes only on the correction page.
        if obj is not None and obj.register_texts_frozen:
            return (*self.readonly_fields, *REGISTER_FIELDS)
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Initiative, form: Any, change: bool) -> None:
        # Onboarding goes through onboard_view; here only edits, through the audited service.
        try:
            initiative_details_save(obj, actor=request.user.get_username(), fields=list(form.changed_data))
        except RegisterTextsFrozenError as error:
            # Collection opened between loading and saving this form: nothing was saved; say so.
            self.message_user(request, str(error), messages.ERROR)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Initiative]:
        return super().get_queryset(request).prefetch_related("domains")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # initiatives end by the lifecycle and destruction, never by a row delete

    def get_urls(self) -> list[URLPattern]:
        onboard = path(
            "onboard/", self.admin_site.admin_view(self.onboard_view), name="tenants_initiative_onboard"
        )
        correct = path(
            "<int:pk>/correct/",
            self.admin_site.admin_view(self.correct_view),
            name="tenants_initiative_correct",
        )
        return [
            onboard,
            correct,
            *submission_urls(self),
            *organiser_urls(self),
            *self.hold_urls(),
            *super().get_urls(),
        ]

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        return HttpResponseRedirect(reverse("operator:tenants_initiative_onboard"))

    def onboard_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            return HttpResponse(status=403)
        form = OnboardingForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                initiative = initiative_onboard(
                    form.onboarding_request(), actor=request.user.get_username(), provision="worker"
                )
            except OnboardingError as error:
                for field, field_messages in error.errors.items():
                    for message in field_messages:
                        form.add_error(field if field in form.fields else None, message)
            else:
                self.message_user(
                    request,
                    f"{initiative.slug} is being provisioned; it becomes visible when a worker has created "
                    "its schema.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("operator:tenants_initiative_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Onboard an initiative",
            "form": form,
            "opts": self.model._meta,
            "submit_label": "Onboard",
        }
        status = 400 if request.method == "POST" else 200
        return TemplateResponse(request, "operator/form.html", context, status=status)

    def correct_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The audited correction of the register data, with a required reason (REQ-10)."""
        initiative = Initiative.objects.filter(pk=pk).first()
        if initiative is None:
            return HttpResponse(status=404)
        if not self.has_change_permission(request, initiative):
            return HttpResponse(status=403)
        form = RegisterCorrectionForm.for_initiative(initiative, request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                initiative_register_correct(
                    initiative,
                    actor=request.user.get_username(),
                    reason=form.cleaned_data["reason"],
                    **form.changes(),
                )
            except RegisterCorrectionError as error:
                form.add_error(None, str(error))
            else:
                self.message_user(
                    request, f"{initiative.slug}: the register data is corrected.", messages.SUCCESS
                )
                return HttpResponseRedirect(
                    reverse("operator:tenants_initiative_change", args=[initiative.pk])
                )
        frozen = (
            f"Collection opened on {initiative.collection_opened_on}: the register data is frozen, and "
            "this correction is recorded in the audit log with its reason."
            if initiative.register_texts_frozen
            else "Collection has not opened yet; the correction is recorded in the audit log with its reason."
        )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Correct the register data of {initiative.slug}",
            "form": form,
            "opts": self.model._meta,
            "submit_label": "Correct",
            "intro": frozen,
        }
        status = 400 if request.method == "POST" else 200
        return TemplateResponse(request, "operator/form.html", context, status=status)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records the platform writes itself: shown, never added, edited or deleted by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent, site=operator_site)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("sequence", "occurred_at", "actor", "action", "initiative_slug", "details")
    list_filter = ("action",)
    search_fields = ("initiative_slug", "actor", "action")
    date_hierarchy = "occurred_at"


@admin.register(ReencryptionJob, site=operator_site)
class ReencryptionJobAdmin(ReadOnlyAdmin):
    list_display = (
        "pk",
        "initiative",
        "purpose",
        "target_version",
        "state",
        "records_done",
        "records_total",
        "records_moved",
        "attempts",
        "created_at",
        "finished_at",
    )
    list_filter = ("state", "purpose")


@admin.register(CompetentAuthority, site=operator_site)
class CompetentAuthorityAdmin(ReadOnlyAdmin):
    """The registry of the authorities' certificates: registered from a file, then confirmed by typing in
    the fingerprint the authority gave through another channel (tenants/authorities.py)."""

    list_display = (
        "country",
        "name",
        "fingerprint",
        "not_after",
        "registered_by",
        "confirmed_by",
        "usable",
    )
    change_form_template = "operator/authority_change_form.html"
    # Before confirmation neither the fingerprint nor the certificate it is computed from is shown: the
    # confirming operator types in what the authority said (four eyes, tenants/authorities.py).
    UNCONFIRMED_HIDDEN = ("fingerprint_sha256", "certificate_pem")

    def _shown(self, obj: CompetentAuthority | None) -> tuple[str, ...]:
        hidden = self.UNCONFIRMED_HIDDEN if obj is None or obj.confirmed_at is None else ()
        return tuple(f.name for f in CompetentAuthority._meta.fields if f.name not in hidden)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return self._shown(obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return self._shown(obj)

    @admin.display(description="SHA-256 fingerprint")
    def fingerprint(self, authority: CompetentAuthority) -> str:
        return fingerprint_shown(authority) or "(shown once confirmed)"

    @admin.display(boolean=True, description="usable for exports")
    def usable(self, authority: CompetentAuthority) -> bool:
        return not authority_problem(authority, authority.country, at=timezone.now())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("tenants.add_competentauthority"))

    def get_urls(self) -> list[URLPattern]:
        register = path(
            "register/",
            self.admin_site.admin_view(self.register_view),
            name="tenants_competentauthority_register",
        )
        confirm = path(
            "<int:pk>/confirm/",
            self.admin_site.admin_view(self.confirm_view),
            name="tenants_competentauthority_confirm",
        )
        return [register, confirm, *super().get_urls()]

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        return HttpResponseRedirect(reverse("operator:tenants_competentauthority_register"))

    def _form_page(
        self,
        request: HttpRequest,
        form: Any,
        title: str,
        submit: str,
        intro: str = "",
        status: int | None = None,
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "form": form,
            "opts": self.model._meta,
            "submit_label": submit,
            "intro": intro,
        }
        if status is None:
            status = 400 if request.method == "POST" else 200
        return TemplateResponse(request, "operator/form.html", context, status=status)

    def register_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("tenants.add_competentauthority"):
            return HttpResponse(status=403)
        form = AuthorityRegistrationForm(request.POST or None, request.FILES or None)
        status = None
        if request.method == "POST" and form.is_valid():
            try:
                authority = authority_register(
                    country=form.cleaned_data["country"],
                    certificate_pem=form.cleaned_data["certificate"],
                    name=form.cleaned_data["name"],
                    actor=request.user.get_username(),
                )
            except NotificationError as error:
                form.add_error(None, str(error))
                status = 503
            except AuthorityError as error:
                form.add_error("certificate", str(error))
            else:
                # No fingerprint here: another operator types it in from the authority's own word.
                self.message_user(
                    request,
                    f"Registered the certificate of {authority.country}. No export uses it until another "
                    "operator confirms it with the fingerprint the authority gives through another channel.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("operator:tenants_competentauthority_change", args=[authority.pk])
                )
        return self._form_page(
            request, form, "Register a competent authority's certificate", "Register", status=status
        )

    def confirm_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not request.user.has_perm("tenants.change_competentauthority"):
            return HttpResponse(status=403)
        authority = CompetentAuthority.objects.filter(pk=pk).first()
        if authority is None:
            return HttpResponse(status=404)
        if request.method == "POST":
            # Confirming a certificate asks for a recent second factor (the prompt resends the form).
            prompt = operator_second_factor.reverification_response(request)
            if prompt is not None:
                return prompt
        form = AuthorityConfirmationForm(request.POST or None)
        status = None
        if request.method == "POST" and form.is_valid():
            try:
                authority_confirm(
                    country=authority.country,
                    fingerprint=form.cleaned_data["fingerprint"],
                    actor=request.user.get_username(),
                )
            except SameOperatorError as error:
                form.add_error(None, str(error))
                status = 403
            except NotificationError as error:
                form.add_error(None, str(error))
                status = 503
            except AuthorityError as error:
                form.add_error("fingerprint", str(error))
            else:
                self.message_user(
                    request, f"Confirmed the certificate of {authority.country}.", messages.SUCCESS
                )
                return HttpResponseRedirect(reverse("operator:tenants_competentauthority_changelist"))
        intro = (
            f"Certificate of {authority.country}: {authority.subject}, "
            f"valid until {authority.not_after:%Y-%m-%d}, registered by {authority.registered_by}. Type in "
            "the fingerprint the authority gave you through another channel."
        )
        if authority.registered_by == request.user.get_username():
            intro += " You registered this certificate: another operator must confirm it (four eyes)."
        return self._form_page(
            request, form, f"Confirm the certificate of {authority.country}", "Confirm", intro, status
        )


operator_site.register(LegalHold, LegalHoldAdmin)
operator_site.register(DestructionRecord, DestructionRecordAdmin)

# Operator accounts are managed in the same console.
# Privileges: only a superuser grants them -------------------------------------------------------------

PRIVILEGE_FIELDS = ("is_staff", "is_superuser", "groups", "user_permissions")


class OperatorUserChangeForm(UserChangeForm):
    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        # Roles kept apart (tenants/roles.py): said on the form rather than refused by the model.
        privileged = cleaned.get("is_staff", self.instance.is_staff) or cleaned.get(
            "is_superuser", self.instance.is_superuser
        )
        if privileged and user_organises(self.instance.pk):
            raise forms.ValidationError(ORGANISER_CANNOT_BE_STAFF)
        return cleaned


class OperatorUserAdmin(SecondFactorUserAdmin):
    """Django's user admin, where only a superuser changes staff status, superuser status, groups and
    permissions (others see them read-only), and only a superuser changes a staff or superuser account
    (its password included): otherwise any staff member with the "change user" permission could make
    themselves or a friend superuser, or take over a more privileged colleague's account."""

    form = OperatorUserChangeForm

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = tuple(super().get_readonly_fields(request, obj))
        if request.user.is_superuser:
            return readonly
        return readonly + tuple(field for field in PRIVILEGE_FIELDS if field not in readonly)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and user_privileged(obj) and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and user_privileged(obj) and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)


class OperatorGroupAdmin(GroupAdmin):
    """A group's permissions are privileges: only a superuser adds, changes or deletes groups."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)


OperatorUserAdmin.second_factor_steps = operator_second_factor
operator_site.register(User, OperatorUserAdmin)
operator_site.register(Group, OperatorGroupAdmin)
