"""Tenant models: live in each initiative's own schema."""

from __future__ import annotations

import uuid

from django.db import models


class Statement(models.Model):
    """One statement of support. The personal data is a single encrypted blob (keys issue); nothing
    personal is stored in the clear. The signing issue fills these rows."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # REQ-15: the Member State the statement counts for (the signatory's nationality).
    country = models.CharField(max_length=2)
    form_revision = models.CharField(max_length=32)
    submitted_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The personal-data key version the sealed blob names (also in the blob's header).
    key_version = models.PositiveIntegerField()
    # REQ-14: HMAC of the normalised identity under the initiative's index key; unique per initiative.
    index_digest = models.BinaryField(max_length=32, unique=True)
    index_key_version = models.PositiveIntegerField()
    sealed_personal_data = models.BinaryField()

    class Meta:
        indexes = [
            # Counts per country, and an export's statements in order without sorting them first (one
            # index, in place of one on the country alone: signing maintains no more indexes than before).
            models.Index(fields=["country", "submitted_at", "id"], name="statement_country_order"),
        ]

    def __str__(self) -> str:
        return f"statement {self.id} ({self.country})"


class ContactEmail(models.Model):
    """An optional e-mail address a signatory gave, with its own consent (REQ-19): stored apart from the
    statements, with no link to one, sealed like them, and destroyed on its own schedule."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # The sealing binds a two-letter scope; for addresses it is always "EU" (no nationality is kept).
    scope = models.CharField(max_length=2, default="EU", editable=False)
    key_version = models.PositiveIntegerField()
    sealed_email = models.BinaryField()
    given_on = models.DateField(auto_now_add=True, help_text="The day only: REQ-19 counts in months.")

    def __str__(self) -> str:
        return f"contact address {self.id}"
