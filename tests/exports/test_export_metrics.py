"""Export jobs and records are counted as they happen (eci_export_jobs_total, eci_export_records_total)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import REGISTRY

from collection.models import Statement
from exports.models import ExportJobState
from exports.services import export_request, export_run
from tests.exports.conftest import ExportingInitiative

Factory = Callable[..., ExportingInitiative]


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_jobs_are_counted_by_state_and_the_records_of_finished_ones(exporting_factory: Factory) -> None:
    exporting = exporting_factory({"DE": 3, "FR": 2})
    before = {state: counted("eci_export_jobs_total", state=state) for state in ("queued", "running", "done")}
    records_before = counted("eci_export_records_total")
    with exporting.initiative:
        jobs = export_request(country="all", actor="t")
        for job in jobs:
            export_run(job.pk)
            export_run(job.pk)  # a second delivery does nothing and counts nothing
    assert counted("eci_export_jobs_total", state="queued") == before["queued"] + 2
    assert counted("eci_export_jobs_total", state="running") == before["running"] + 2
    assert counted("eci_export_jobs_total", state="done") == before["done"] + 2
    assert counted("eci_export_records_total") == records_before + 5


def test_a_failed_job_is_counted_as_failed_with_no_records(exporting_factory: Factory) -> None:
    exporting = exporting_factory({"DE": 2})
    failed_before = counted("eci_export_jobs_total", state="failed")
    records_before = counted("eci_export_records_total")
    with exporting.initiative:
        Statement.objects.update(form_revision="unknown-revision")  # the export cannot write them
        (job,) = export_request(country="DE", actor="t")
        outcome = export_run(job.pk)
    assert outcome.state == ExportJobState.FAILED
    assert counted("eci_export_jobs_total", state="failed") == failed_before + 1
    assert counted("eci_export_records_total") == records_before
