"""Shared (public schema) models: the initiative as tenant, its domain, organisers and the audit log."""

from __future__ import annotations

import datetime

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin

# REQ-07: the collection period lasts at most 12 months and starts no later than 6 months after
# registration.
COLLECTION_PERIOD = relativedelta(months=12)
LATEST_START_AFTER_REGISTRATION = relativedelta(months=6)


class InitiativeState(models.TextChoices):
    PROVISIONING = "provisioning", "provisioning"
    READY = "ready", "ready"
    COLLECTING = "collecting", "collecting"
    PAUSED = "paused", "paused"
    CLOSED = "closed", "closed"
    SUBMITTED = "submitted", "submitted"
    WITHDRAWN = "withdrawn", "withdrawn"
    DESTROYED = "destroyed", "destroyed"


# States in which the initiative's site answers; a provisioning or destroyed one is invisible.
VISIBLE_STATES = frozenset(
    {
        InitiativeState.READY,
        InitiativeState.COLLECTING,
        InitiativeState.PAUSED,
        InitiativeState.CLOSED,
        InitiativeState.SUBMITTED,
        InitiativeState.WITHDRAWN,
    }
)


class Initiative(TenantMixin):
    """A registered European Citizens' Initiative; one PostgreSQL schema each."""

    # Schemas are created explicitly by `initiative_provision` (cloned from the template), never on save.
    auto_create_schema = False
    auto_drop_schema = False
    clone_mode = "NODATA"

    slug = models.SlugField(max_length=63, unique=True, help_text="The subdomain of the initiative's site.")
    registration_number = models.CharField(max_length=16, unique=True)
    registered_on = models.DateField()
    registered_language = models.CharField(max_length=2, default="en")
    languages = ArrayField(models.CharField(max_length=2), default=list)
    # The register's texts, keyed by language code: {"en": "...", "fr": "..."}.
    title = models.JSONField(default=dict)
    subject = models.JSONField(default=dict, blank=True)
    objectives = models.JSONField(default=dict, blank=True)
    register_url = models.URLField(blank=True)
    website_url = models.URLField(blank=True)
    # The contact persons as published on the Commission's register: [{"name": ..., "email": ...}].
    contact_persons = models.JSONField(default=list, blank=True)

    collection_start = models.DateField()
    state = models.CharField(
        max_length=16, choices=InitiativeState.choices, default=InitiativeState.PROVISIONING
    )
    state_changed_at = models.DateTimeField(auto_now_add=True)
    submitted_on = models.DateField(null=True, blank=True)
    withdrawn_on = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return f"{self.slug} ({self.registration_number})"

    @property
    def collection_end(self) -> datetime.date:
        """The last day of the collection period (inclusive)."""
        return self.collection_start + COLLECTION_PERIOD - datetime.timedelta(days=1)

    @property
    def is_visible(self) -> bool:
        return self.state in VISIBLE_STATES

    def text(self, field: str, language: str) -> str:
        """A register text in `language`, falling back to the registered language."""
        texts: dict[str, str] = getattr(self, field) or {}
        return texts.get(language) or texts.get(self.registered_language) or ""


class Domain(DomainMixin):
    """The host name of an initiative's site: `<slug>.<PLATFORM_DOMAIN>`."""


class OrganiserMembership(models.Model):
    """A platform user who organises one initiative (the group of organisers is the controller)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="organiser_of")
    initiative = models.ForeignKey(Initiative, on_delete=models.CASCADE, related_name="organisers")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "initiative"], name="one_membership_per_user")]

    def __str__(self) -> str:
        return f"organiser {self.user_id} of {self.initiative_id}"


class AuditEvent(models.Model):
    """The platform audit log: who did what to which initiative, and when. Append-only; holds ids and
    states, never personal data of signatories."""

    occurred_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=150, help_text="Operator username, 'system' or 'command-line'.")
    action = models.CharField(max_length=64, db_index=True)
    initiative = models.ForeignKey(
        Initiative, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    # Kept apart from the foreign key so the record survives the initiative's row.
    initiative_slug = models.CharField(max_length=63, blank=True, db_index=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.initiative_slug}"
