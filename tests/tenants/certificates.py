"""Certified counts that meet REQ-01, for tests that need a submittable initiative: seven Member States at
their thresholds of the 720-seat table (the fixtures' initiatives are registered under it) and the rest
to a million in Germany."""

from __future__ import annotations

from django.utils import timezone

from tenants.certification import certified_count_record
from tenants.models import Initiative

VALID_COUNTS = {"DE": 69120, "FR": 58320, "IT": 54720, "ES": 43920, "PL": 38160, "RO": 23760, "NL": 22320}
VALID_COUNTS["DE"] += 1_000_000 - sum(VALID_COUNTS.values())


def certify_valid(initiative: Initiative) -> None:
    """Record VALID_COUNTS, certified today; the initiative must be closed (or submitted)."""
    for country, valid in VALID_COUNTS.items():
        certified_count_record(
            initiative,
            country=country,
            valid_statements=valid,
            certified_on=timezone.localdate(),
            document=None,
            document_name="",
            actor="test-setup",
        )
