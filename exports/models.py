"""Export jobs (tenant app): one row per (country, request) in the initiative's own schema. The database
is the source of truth; the broker only wakes workers."""

from __future__ import annotations

from django.db import models


class ExportJobState(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    DONE = "done", "done"
    FAILED = "failed", "failed"


UNFINISHED_EXPORT_STATES = (ExportJobState.QUEUED, ExportJobState.RUNNING)


class ExportBatch(models.Model):
    """ "All countries": one job per country with statements, and a counter of those not yet finished
    (no Celery chord: each job decrements it when it ends, whichever worker runs it)."""

    requested_by = models.CharField(max_length=150)
    requested_at = models.DateTimeField(auto_now_add=True)
    jobs_total = models.PositiveIntegerField()
    remaining = models.PositiveIntegerField()
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"export batch {self.pk} ({self.remaining} of {self.jobs_total} remaining)"


class ExportJob(models.Model):
    """The export of one Member State's statements for its competent authority (REQ-25, REQ-29)."""

    batch = models.ForeignKey(
        ExportBatch, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs"
    )
    country = models.CharField(max_length=2)
    state = models.CharField(max_length=16, choices=ExportJobState.choices, default=ExportJobState.QUEUED)
    requested_by = models.CharField(max_length=150)
    requested_at = models.DateTimeField(auto_now_add=True)
    # The worker that holds the job and until when; an expired lease is taken over by the reconciler.
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    records_expected = models.PositiveBigIntegerField(null=True, blank=True)
    records_written = models.PositiveBigIntegerField(default=0)
    # Where the encrypted file and its manifest are: object keys of the export storage.
    object_key = models.CharField(max_length=255, blank=True)
    manifest_key = models.CharField(max_length=255, blank=True)
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, help_text="Of the encrypted file.")
    authority_fingerprint = models.CharField(max_length=95, blank=True)
    platform_fingerprint = models.CharField(max_length=95, blank=True)
    error = models.CharField(max_length=300, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When the destruction of the statements (REQ-18) deleted the file and its manifest.
    files_destroyed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state", "lease_until"], name="export_job_lease")]
        ordering = ["-requested_at", "-pk"]

    def __str__(self) -> str:
        return f"export {self.pk} of {self.country} ({self.state})"
