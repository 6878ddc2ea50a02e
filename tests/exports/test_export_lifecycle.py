"""Exports run only once collection has closed: from `closed` or `submitted` (DESIGN "Lifecycle and
retention"), never while collecting, before it or after a withdrawal, and never once the statements were
destroyed. Refused with the state named, through the service, the command and the organisers' page, with
nothing written; a job queued earlier fails when its initiative has left those states since."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from collection.services import statement_record
from exports.models import ExportBatch, ExportJob, ExportJobState
from exports.services import ExportRefusedError, export_request, export_run
from exports.storage import export_storage
from regulation.annex_iii import FORM_REVISION
from tenants.models import (
    AuditEvent,
    DestructionRecord,
    DestructionScope,
    Initiative,
    InitiativeState,
)
from tenants.services import initiative_transition
from tests.exports.conftest import TEST_ACTOR, AuthorityKeys, Factory, MakeUser, personal_data_of
from tests.exports.organisers import EXPORTS, audit_of, page_text, signed_in

REFUSED_STATES = ["ready", "collecting", "paused", "withdrawn"]


def refusal_for(state: str) -> str:
    return f"Exports run once collection has closed (closed or submitted); the initiative is {state}."


def nothing_written(initiative: Initiative) -> None:
    with initiative:
        assert not ExportJob.objects.exists() and not ExportBatch.objects.exists()
    assert audit_of(initiative, "export.requested") == []


def stored_files(initiative: Initiative, export_folders: Path) -> list[Path]:
    folder = export_folders / "storage" / "exports" / initiative.schema_name
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


def statements_destroyed(initiative: Initiative, *, finished: bool = True) -> DestructionRecord:
    """What a destruction run leaves in the public schema (made here directly: this is about exports)."""
    now = timezone.now()
    return DestructionRecord.objects.create(
        initiative=initiative,
        initiative_slug=initiative.slug,
        registration_number=initiative.registration_number,
        scope=DestructionScope.STATEMENTS,
        deadline=timezone.localdate(),
        actor=TEST_ACTOR,
        started_run="test",
        started_at=now,
        finished_at=now if finished else None,
    )


def withdrawn(initiative: Initiative) -> Initiative:
    return initiative_transition(initiative, InitiativeState.WITHDRAWN, actor=TEST_ACTOR, reason="test")


# -- refused before collection has closed and after a withdrawal ---------------------------------------


@pytest.mark.parametrize("state", REFUSED_STATES)
def test_the_service_refuses_naming_the_state_and_writes_nothing(
    exporting_factory: Factory, state: str
) -> None:
    exporting = exporting_factory({} if state == "ready" else {"DE": 1}, state=state)
    with exporting.initiative:
        for country in ("DE", "all"):
            with pytest.raises(ExportRefusedError) as refused:
                export_request(country=country, actor="organiser@example.org")
            assert str(refused.value) == refusal_for(state)
    nothing_written(exporting.initiative)


@pytest.mark.parametrize("state", REFUSED_STATES)
def test_the_command_refuses_naming_the_state(exporting_factory: Factory, state: str) -> None:
    exporting = exporting_factory({} if state == "ready" else {"DE": 1}, state=state)
    out = StringIO()
    with pytest.raises(CommandError, match=f"the initiative is {state}"):
        call_command(
            "export_statements",
            "--initiative",
            exporting.initiative.slug,
            "--country",
            "DE",
            "--json",
            stdout=out,
        )
    assert json.loads(out.getvalue())["error"] == refusal_for(state)
    nothing_written(exporting.initiative)


@pytest.mark.usefixtures("_quick_password_hashing")
@pytest.mark.parametrize("state", REFUSED_STATES)
def test_the_organisers_page_says_why_instead_of_offering_the_form(
    exporting_factory: Factory, make_user: MakeUser, state: str
) -> None:
    exporting = exporting_factory({} if state == "ready" else {"DE": 1}, state=state)
    client = signed_in(exporting.initiative, make_user(exporting.initiative))
    response = client.get(EXPORTS)
    page = page_text(response)
    assert response.status_code == 200
    assert "Exports are not possible now" in page and refusal_for(state) in page
    assert f'<form method="post" action="{EXPORTS}"' not in page and "Request the export" not in page

    # A request sent anyway (a page opened before the state changed) is a 400 with the same reason.
    response = client.post(EXPORTS, {"country": "DE"})
    assert response.status_code == 400 and refusal_for(state) in page_text(response)
    nothing_written(exporting.initiative)


# -- allowed from closed and submitted ---------------------------------------------------------------


@pytest.mark.parametrize("state", ["closed", "submitted"])
def test_exports_run_from_closed_and_submitted(
    exporting_factory: Factory, export_folders: Path, state: str
) -> None:
    exporting = exporting_factory({"DE": 2, "FR": 1}, state=state)
    with exporting.initiative:
        jobs = export_request(country="all", actor="organiser@example.org")
        for job in jobs:
            assert export_run(job.pk).state == ExportJobState.DONE
        assert all(job.state == ExportJobState.DONE for job in ExportJob.objects.all())
    assert len(stored_files(exporting.initiative, export_folders)) == 4  # two files, two manifests


@pytest.mark.usefixtures("_quick_password_hashing")
def test_the_organisers_page_offers_the_form_once_closed(
    exporting_factory: Factory, make_user: MakeUser
) -> None:
    exporting = exporting_factory({"DE": 1})
    client = signed_in(exporting.initiative, make_user(exporting.initiative))
    page = page_text(client.get(EXPORTS))
    assert "Request the export" in page and "Exports are not possible now" not in page
    assert client.post(EXPORTS, {"country": "DE"}).status_code == 303


# -- a job queued earlier ----------------------------------------------------------------------------


def test_a_queued_job_whose_initiative_was_withdrawn_since_fails_without_a_file(
    exporting_factory: Factory, export_folders: Path
) -> None:
    exporting = exporting_factory({"DE": 2})
    with exporting.initiative:
        (job,) = export_request(country="DE", actor="organiser@example.org")
    withdrawn(exporting.initiative)
    with exporting.initiative:
        outcome = export_run(job.pk)
        job.refresh_from_db()
    assert outcome.ran and outcome.state == ExportJobState.FAILED
    assert job.state == ExportJobState.FAILED
    assert job.error == f"Not exported: {refusal_for('withdrawn')}"
    assert not job.object_key and not job.manifest_key and job.records_written == 0
    assert stored_files(exporting.initiative, export_folders) == []
    (failed,) = audit_of(exporting.initiative, "export.failed")
    assert "withdrawn" in failed.details["error"]


def test_an_initiative_withdrawn_while_its_file_is_written_keeps_no_file(
    exporting_factory: Factory, export_folders: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exports import services

    exporting = exporting_factory({"DE": 2})
    write = services.export_xml_write

    def withdrawn_meanwhile(*args: object, **kwargs: object) -> int:
        written = write(*args, **kwargs)  # type: ignore[arg-type]
        withdrawn(exporting.initiative)
        return written

    monkeypatch.setattr(services, "export_xml_write", withdrawn_meanwhile)
    with exporting.initiative:
        (job,) = export_request(country="DE", actor="organiser@example.org")
        outcome = export_run(job.pk)
        job.refresh_from_db()
    assert outcome.state == ExportJobState.FAILED and "withdrawn" in job.error
    assert not job.object_key
    assert stored_files(exporting.initiative, export_folders) == []
    assert not export_storage().exists(f"exports/{exporting.initiative.schema_name}/DE/{job.pk}.xml.p7m")


# -- destroyed statements ----------------------------------------------------------------------------


@pytest.mark.parametrize("finished", [True, False])
def test_after_the_statements_were_destroyed_exports_are_refused_with_their_own_message(
    exporting_factory: Factory, export_folders: Path, finished: bool
) -> None:
    exporting = exporting_factory({"DE": 1}, state="submitted")
    with exporting.initiative:
        (queued,) = export_request(country="DE", actor="organiser@example.org")
    record = statements_destroyed(exporting.initiative, finished=finished)
    try:
        expected = re.escape(
            "were destroyed on" if finished else "destruction of the initiative's statements (REQ-18) began"
        )
        with exporting.initiative:
            with pytest.raises(ExportRefusedError, match=expected):
                export_request(country="DE", actor="organiser@example.org")
            assert list(ExportJob.objects.values_list("pk", flat=True)) == [queued.pk]
            assert export_run(queued.pk).state == ExportJobState.FAILED
            queued.refresh_from_db()
        assert "REQ-18" in queued.error and not queued.object_key
        assert stored_files(exporting.initiative, export_folders) == []
        with pytest.raises(CommandError, match=expected):
            call_command(
                "export_statements",
                "--initiative",
                exporting.initiative.slug,
                "--country",
                "DE",
                stdout=StringIO(),
            )
    finally:
        record.delete()


# -- one initiative's state is its own ---------------------------------------------------------------


@pytest.mark.django_db
def test_betas_state_does_not_affect_alphas_exports(
    alpha: Initiative, beta: Initiative, authority_keys: AuthorityKeys
) -> None:
    for initiative in (alpha, beta):  # onboarded with complete register data (tests/conftest.py)
        with initiative:
            statement_record(
                country="DE", personal_data=personal_data_of("DE", 0), form_revision=FORM_REVISION
            )
    initiative_transition(alpha, InitiativeState.CLOSED, actor=TEST_ACTOR)
    assert alpha.state == InitiativeState.CLOSED and beta.state == InitiativeState.COLLECTING

    with alpha:
        (job,) = export_request(country="DE", actor="organiser@example.org")
    with beta:
        with pytest.raises(ExportRefusedError, match="the initiative is collecting"):
            export_request(country="DE", actor="organiser@example.org")
        assert not ExportJob.objects.exists()

    withdrawn(beta)
    with alpha:
        # Another initiative's withdrawal leaves alpha's request standing and its next one allowed.
        assert ExportJob.objects.get().pk == job.pk
        assert len(export_request(country="all", actor="organiser@example.org")) == 1
    assert AuditEvent.objects.filter(initiative=beta, action="export.requested").count() == 0
