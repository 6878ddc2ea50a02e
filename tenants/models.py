"""Shared (public schema) models: the initiative as tenant, its domain, organisers and the audit log."""

from __future__ import annotations

import datetime
from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models, transaction
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.models import DomainMixin, TenantMixin

from regulation.periods import collection_end
from tenants.roles import membership_check


class InitiativeState(models.TextChoices):
    PROVISIONING = "provisioning", "provisioning"
    READY = "ready", "ready"
    COLLECTING = "collecting", "collecting"
    PAUSED = "paused", "paused"
    CLOSED = "closed", "closed"
    SUBMITTED = "submitted", "submitted"
    WITHDRAWN = "withdrawn", "withdrawn"
    DESTROYED = "destroyed", "destroyed"


# States in which the initiative's site answers; a provisioning one is invisible. A destroyed one still
# shows its public register data and kept counts, and its organisers may use the e-mail addresses until
# their own deadline (REQ-19).
VISIBLE_STATES = frozenset(
    {
        InitiativeState.READY,
        InitiativeState.COLLECTING,
        InitiativeState.PAUSED,
        InitiativeState.CLOSED,
        InitiativeState.SUBMITTED,
        InitiativeState.WITHDRAWN,
        InitiativeState.DESTROYED,
    }
)


class Initiative(TenantMixin):
    """A registered European Citizens' Initiative; one PostgreSQL schema each."""

    # Schemas are created explicitly by onboarding (cloned from the template), never on save.
    auto_create_schema = False
    auto_drop_schema = False

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
    # The anti-bot proof of work's cost for this initiative's forms (largest number searched).
    altcha_cost = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: the platform default.")
    state = models.CharField(
        max_length=16, choices=InitiativeState.choices, default=InitiativeState.PROVISIONING
    )
    state_changed_at = models.DateTimeField(auto_now_add=True)
    # The first day collection opened: from then on the register texts are frozen (REQ-10).
    collection_opened_on = models.DateField(null=True, blank=True)
    # The day collection ended (the period's last day, or an earlier close): REQ-25 counts from it.
    closed_on = models.DateField(null=True, blank=True)
    submitted_on = models.DateField(null=True, blank=True)
    withdrawn_on = models.DateField(null=True, blank=True)
    # REQ-28 (Annex VII): the sources of support and funding, as the organisers enter them:
    # [{"source": "...", "amount_eur": "1234.00"}].
    funding_sources = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return f"{self.slug} ({self.registration_number})"

    @property
    def collection_end(self) -> datetime.date:
        """The last day of the collection period (inclusive)."""
        return collection_end(self.collection_start)

    @property
    def register_texts_frozen(self) -> bool:
        """REQ-10: once collection has opened, the register texts change only by an audited correction."""
        return self.collection_opened_on is not None

    @property
    def is_visible(self) -> bool:
        return self.state in VISIBLE_STATES

    @property
    def proof_of_work_cost(self) -> int:
        return self.altcha_cost or settings.ALTCHA_COST

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

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Roles kept apart (tenants/roles.py): a staff or superuser account never organises.
        with transaction.atomic():
            membership_check(self.user_id)
            super().save(*args, **kwargs)


class OrganiserInvitation(models.Model):
    """A single-use, expiring invitation to organise one initiative, sent by e-mail. Only a hash of its
    token is kept: the link in the message is the one copy of the token."""

    initiative = models.ForeignKey(Initiative, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(help_text="Where the invitation went; the account's username once accepted.")
    token_sha256 = models.CharField(max_length=64, unique=True)
    invited_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"invitation {self.pk} to initiative {self.initiative_id}"


class AuditEvent(models.Model):
    """The platform audit log: who did what to which initiative, and when. Append-only (a trigger refuses
    UPDATE, DELETE and TRUNCATE) and chained: each event's HMAC, under a key from the key provider, covers
    its content and the previous event's HMAC (tenants/audit.py). Holds ids and states, never personal
    data of signatories."""

    # Gapless and in commit order: given under a lock by audit_record, from 1.
    sequence = models.BigIntegerField(unique=True)
    occurred_at = models.DateTimeField(db_index=True)
    actor = models.CharField(max_length=150, help_text="Operator username, 'system' or 'command-line'.")
    action = models.CharField(max_length=64, db_index=True)
    # No database constraint and DO_NOTHING: deleting an initiative never touches (or needs) its events,
    # which keep its id; the slug is kept apart for reading them without the initiative's row.
    initiative = models.ForeignKey(
        Initiative,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="audit_events",
    )
    initiative_slug = models.CharField(max_length=63, blank=True, db_index=True)
    details = models.JSONField(default=dict, blank=True)
    hmac = models.CharField(max_length=64, unique=True)
    previous_hmac = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-sequence"]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.initiative_slug}"


class KeyPurpose(models.TextChoices):
    PERSONAL_DATA = "personal", "personal data"
    INDEX = "index", "duplicate index"


class DataKeyState(models.TextChoices):
    PENDING = "pending", "pending"  # known to every process, not yet used for writing
    PRIMARY = "primary", "primary"  # used for new writes; exactly one per initiative and purpose
    DECRYPT_ONLY = "decrypt-only", "decrypt-only"  # still read, no longer written
    DESTROYED = "destroyed", "destroyed"  # wrapped key erased: what it sealed is unreadable


class KeyEncryptionKey(models.Model):
    """An initiative's key-encryption key, held by the key provider; this row holds its reference only."""

    initiative = models.ForeignKey(Initiative, on_delete=models.PROTECT, related_name="keks")
    provider = models.CharField(max_length=16)
    reference = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    destroyed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"KEK {self.pk} of initiative {self.initiative_id}"


class DataKey(models.Model):
    """A versioned data key of one initiative and purpose, stored only wrapped by the initiative's KEK."""

    initiative = models.ForeignKey(Initiative, on_delete=models.PROTECT, related_name="data_keys")
    purpose = models.CharField(max_length=16, choices=KeyPurpose.choices)
    version = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=DataKeyState.choices)
    kek = models.ForeignKey(KeyEncryptionKey, on_delete=models.PROTECT, related_name="data_keys")
    wrapped = models.BinaryField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    primary_since = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    destroyed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["initiative", "purpose", "version"], name="one_data_key_per_version"
            ),
            models.UniqueConstraint(
                fields=["initiative", "purpose"],
                condition=models.Q(state="primary"),
                name="one_primary_data_key_per_purpose",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} key v{self.version} of initiative {self.initiative_id} ({self.state})"


class ReencryptionJobState(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    FINISHED = "finished", "finished"
    FAILED = "failed", "failed"


class ReencryptionJob(models.Model):
    """A sweep that moves every sealed record of an initiative to the primary key version, in resumable
    batches: the checkpoint is the last record id done, the lease says which worker holds the job."""

    initiative = models.ForeignKey(Initiative, on_delete=models.PROTECT, related_name="reencryption_jobs")
    purpose = models.CharField(max_length=16, choices=KeyPurpose.choices)
    target_version = models.PositiveIntegerField()
    state = models.CharField(
        max_length=16, choices=ReencryptionJobState.choices, default=ReencryptionJobState.QUEUED
    )
    requested_by = models.CharField(max_length=150)
    not_before = models.DateTimeField(help_text="The earliest the sweep may start (see rotation.py).")
    # Where a resumed sweep goes on: the table it was in and the last record id done there.
    checkpoint_table = models.CharField(max_length=63, blank=True)
    checkpoint = models.UUIDField(null=True, blank=True)
    records_done = models.PositiveBigIntegerField(default=0)
    records_moved = models.PositiveBigIntegerField(default=0)
    records_total = models.PositiveBigIntegerField(null=True, blank=True)
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=200, blank=True)
    versions_destroyed = ArrayField(models.PositiveIntegerField(), default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"re-encryption {self.pk} of initiative {self.initiative_id} ({self.state})"


class CompetentAuthority(models.Model):
    """A Member State's competent authority (REQ-25): the X.509 certificate its exports are encrypted to.
    A certificate is used only once its fingerprint has been confirmed: typed in again by someone who
    got it from the authority through another channel. A new certificate starts unconfirmed."""

    country = models.CharField(
        max_length=2, unique=True, help_text="EU code of the Member State (EL for Greece)."
    )
    name = models.CharField(max_length=200, blank=True)
    certificate_pem = models.TextField()
    fingerprint_sha256 = models.CharField(
        max_length=95,
        help_text="SHA-256 of the DER certificate, as `openssl x509 -fingerprint -sha256` prints it.",
    )
    subject = models.CharField(max_length=500)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    registered_by = models.CharField(max_length=150)
    registered_at = models.DateTimeField()
    confirmed_by = models.CharField(max_length=150, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "competent authorities"

    def __str__(self) -> str:
        return f"competent authority of {self.country}"


class LegalHold(models.Model):
    """REQ-18: statements kept past their deadline for legal or administrative proceedings. Destruction
    skips an initiative while one of its holds is active (not lifted)."""

    initiative = models.ForeignKey(Initiative, on_delete=models.PROTECT, related_name="legal_holds")
    reason = models.TextField()
    reference = models.CharField(max_length=200, help_text="The proceedings' reference (case number).")
    set_by = models.CharField(max_length=150)
    set_at = models.DateTimeField()
    lifted_by = models.CharField(max_length=150, blank=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lift_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-set_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["initiative"],
                condition=models.Q(lifted_at__isnull=True),
                name="one_active_legal_hold_per_initiative",
            )
        ]

    def __str__(self) -> str:
        return f"legal hold {self.pk} on initiative {self.initiative_id}"

    @property
    def is_active(self) -> bool:
        return self.lifted_at is None


class CertifiedCount(models.Model):
    """REQ-26: the number of valid statements a Member State's competent authority certified. Aggregate
    figures only; they outlive the statements and feed the Annex VII submission (REQ-28)."""

    initiative = models.ForeignKey(Initiative, on_delete=models.PROTECT, related_name="certified_counts")
    country = models.CharField(max_length=2, help_text="EU code of the Member State (EL for Greece).")
    valid_statements = models.PositiveIntegerField()
    certified_on = models.DateField()
    # The authority's certificate as received (a PDF, say), kept as evidence; never personal data.
    document = models.BinaryField(blank=True, editable=False)
    document_name = models.CharField(max_length=200, blank=True)
    document_sha256 = models.CharField(max_length=64, blank=True)
    recorded_by = models.CharField(max_length=150)
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["country"]
        constraints = [
            models.UniqueConstraint(fields=["initiative", "country"], name="one_certified_count_per_country")
        ]

    def __str__(self) -> str:
        return f"certified count of {self.country} for initiative {self.initiative_id}"


class DestructionScope(models.TextChoices):
    STATEMENTS = "statements", "statements of support (REQ-18)"
    EMAILS = "emails", "e-mail addresses (REQ-19)"


class DestructionRecord(models.Model):
    """What a destruction run destroyed for one initiative and scope, kept in the public schema for
    good: what, how many rows and files, which key ids, when and by which run. Created when the run
    starts and finished when the last step is done, so a run killed halfway is finished by the next."""

    initiative = models.ForeignKey(
        Initiative, null=True, blank=True, on_delete=models.SET_NULL, related_name="destruction_records"
    )
    # Kept apart from the foreign key so the record says whose data it was on its own.
    initiative_slug = models.CharField(max_length=63, db_index=True)
    registration_number = models.CharField(max_length=16)
    scope = models.CharField(max_length=16, choices=DestructionScope.choices)
    deadline = models.DateField(help_text="The legal deadline the run acted on.")
    actor = models.CharField(max_length=150)
    started_run = models.CharField(max_length=32, help_text="The id of the run that started it.")
    finished_run = models.CharField(max_length=32, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    # The steps done so far, in order; a resumed run skips them.
    steps_done = ArrayField(models.CharField(max_length=32), default=list, blank=True)
    # {"statements": 120, "contact_emails": 30, "export_jobs": 4}
    rows_deleted = models.JSONField(default=dict, blank=True)
    # Objects removed from the export storage, every version and leftover counted.
    files_deleted = models.PositiveIntegerField(default=0)
    # {"data_keys": ["personal:v1", ...], "keks": [12, 13]}: ids, never key material.
    keys_destroyed = models.JSONField(default=dict, blank=True)
    # What stays: the statements counted per Member State when they were destroyed.
    counts_kept = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["initiative_slug", "scope"], name="one_destruction_per_scope")
        ]

    def __str__(self) -> str:
        return f"destruction of {self.scope} of {self.initiative_slug}"

    @property
    def is_finished(self) -> bool:
        return self.finished_at is not None


# -- the second factor's devices (django-otp), with their secrets kept out of reach of a database copy --


class SealedTOTPDevice(TimestampMixin, ThrottlingMixin, Device):
    """django-otp's TOTP device, its secret sealed (tenants/keyring/account_secrets.py) instead of kept in
    clear. Same fields and checks as django-otp's TOTPDevice, whose verification and set-up URL it uses."""

    sealed_key: models.BinaryField[bytes, bytes] = models.BinaryField(
        help_text="The TOTP secret, sealed under a key from the key provider."
    )
    step: models.PositiveSmallIntegerField[int, int] = models.PositiveSmallIntegerField(default=30)
    t0: models.BigIntegerField[int, int] = models.BigIntegerField(default=0)
    digits: models.PositiveSmallIntegerField[int, int] = models.PositiveSmallIntegerField(
        choices=[(6, 6), (8, 8)], default=6
    )
    tolerance: models.PositiveSmallIntegerField[int, int] = models.PositiveSmallIntegerField(default=1)
    drift: models.SmallIntegerField[int, int] = models.SmallIntegerField(default=0)
    last_t: models.BigIntegerField[int, int] = models.BigIntegerField(
        default=-1, help_text="The time step of the last code accepted."
    )

    class Meta(Device.Meta):
        verbose_name = "TOTP device"

    @classmethod
    def for_secret(cls, user: Any, secret: bytes, **fields: Any) -> SealedTOTPDevice:
        from tenants.keyring.account_secrets import totp_secret_seal

        return cls(user=user, sealed_key=totp_secret_seal(secret, user_id=user.pk), **fields)

    @property
    def bin_key(self) -> bytes:
        from tenants.keyring.account_secrets import totp_secret_open

        return totp_secret_open(self.sealed_key, user_id=self.user_id)

    # django-otp's own (they read bin_key and the fields above).
    verify_token = TOTPDevice.verify_token
    get_throttle_factor = TOTPDevice.get_throttle_factor
    config_url = TOTPDevice.config_url
    _read_str_from_settings = TOTPDevice._read_str_from_settings


class BackupCodeDevice(ThrottlingMixin, Device):
    """Single-use backup codes, each kept as an HMAC (django-otp's static device keeps them in clear)."""

    class Meta(Device.Meta):
        verbose_name = "backup codes"

    def verify_token(self, token: Any) -> bool:
        from tenants.keyring.account_secrets import backup_code_digest

        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        digest = backup_code_digest(str(token), user_id=self.user_id)
        with transaction.atomic():
            spent = BackupCode.objects.select_for_update().filter(device=self, digest=digest).first()
            if spent is not None:
                spent.delete()  # good once
        if spent is None:
            self.throttle_increment(commit=True)
            return False
        self.throttle_reset(commit=True)
        return True

    def get_throttle_factor(self) -> int:
        return int(getattr(settings, "OTP_STATIC_THROTTLE_FACTOR", 1))


class BackupCode(models.Model):
    device = models.ForeignKey(BackupCodeDevice, on_delete=models.CASCADE, related_name="codes")
    digest = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["device", "digest"], name="backup_code_unique")]

    def __str__(self) -> str:
        return f"backup code {self.pk} of device {self.device_id}"  # never the code
