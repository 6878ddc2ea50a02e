"""Export jobs and the records they wrote, counted as they happen (the jobs live in each initiative's
schema: reading them at scrape time would visit every schema). See eci_platform/metrics/."""

from __future__ import annotations

from prometheus_client import Counter

EXPORT_JOBS = Counter(
    "eci_export_jobs_total",
    "Export jobs reaching a state: queued (requested), running (claimed by a worker; again on a retry), "
    "done, failed.",
    ["state"],
)
EXPORT_RECORDS = Counter("eci_export_records_total", "Statements written to finished export files.")
