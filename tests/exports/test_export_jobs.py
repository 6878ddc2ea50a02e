"""Export jobs end to end: requested, run under a lease, written signed and encrypted to the storage, and
read back with the authority's key: valid against the XSD, exactly the country's statements."""

from __future__ import annotations

import datetime
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.test import override_settings
from django.utils import timezone
from lxml import etree
from pytest_django.plugin import DjangoDbBlocker

from collection.models import Statement
from eci_crypto.certificates import private_key_load
from eci_crypto.cms.reader import ExportFileError, export_file_read
from exports.format import export_schema
from exports.models import ExportBatch, ExportJob, ExportJobState
from exports.services import ExportRefusedError, export_request, export_run, platform_signing_identity
from exports.storage import export_storage
from regulation.member_states import member_states
from tenants.models import AuditEvent, CompetentAuthority
from tests.exports.conftest import (
    AuthorityKeys,
    ExportingInitiative,
    committed_initiative_with_statements,
    personal_data_of,
)
from tests.processes import committed_initiative_remove

Factory = Callable[..., ExportingInitiative]


def export_opened(job: ExportJob, keys: AuthorityKeys) -> tuple[etree._Element, dict[str, object]]:
    """Decrypt and verify an export as the authority would; the XML tree and the manifest."""
    storage = export_storage()
    xml = io.BytesIO()
    verified = export_file_read(
        io.BytesIO(storage.read(job.object_key)),
        xml,
        recipient_key=private_key_load(keys.private_key_pem),
        expected_signer=platform_signing_identity().certificate,
    )
    manifest = json.loads(storage.read(job.manifest_key))
    assert verified.content_sha256 == manifest["content"]["sha256"]
    return etree.fromstring(xml.getvalue()), manifest


def properties_of(signature: etree._Element) -> dict[str, str]:
    return {str(prop.findtext("key")): str(prop.findtext("value")) for prop in signature.iter("property")}


PART_A = sorted(code for code, state in member_states().items() if state.is_part_a)
PART_B = sorted(code for code, state in member_states().items() if not state.is_part_a)


@pytest.fixture(scope="module")
def every_country(
    authority_keys: AuthorityKeys, django_db_blocker: DjangoDbBlocker
) -> Iterator[ExportingInitiative]:
    """One initiative with statements of all 27 Member States: two people each where the country
    accepts a free-format document or is Part A, one where only a checked national number is accepted."""
    per_country = {}
    for code in member_states():
        try:
            personal_data_of(code, 1)
            per_country[code] = 2
        except AssertionError:
            per_country[code] = 1
    with django_db_blocker.unblock():
        exporting = committed_initiative_with_statements(per_country)
        yield exporting
        committed_initiative_remove(exporting.initiative)


@pytest.mark.parametrize("country", sorted(member_states()))
def test_the_export_of_every_member_state_holds_exactly_its_statements_under_the_right_keys(
    every_country: ExportingInitiative, authority_keys: AuthorityKeys, committed_db: None, country: str
) -> None:
    exporting = every_country
    with exporting.initiative:
        (job,) = export_request(country=country, actor="organiser@example.org")
        outcome = export_run(job.pk)
        job.refresh_from_db()
    assert outcome.ran and job.state == ExportJobState.DONE, job.error
    tree, manifest = export_opened(job, authority_keys)
    assert export_schema().validate(tree), export_schema().error_log
    assert tree.findtext("forCountry") == country
    expected = {str(statement_id): data for statement_id, data in exporting.statements[country]}
    signatures = {sig.findtext("signatureIdentifier"): sig for sig in tree.iter("signature")}
    assert set(signatures) == set(expected)
    for statement_id, data in expected.items():
        written = properties_of(signatures[statement_id])
        assert written["oct.property.full.first.names"] == data["first_names"]
        assert written["oct.property.family.names"] == data["family_names"]
        if member_states()[country].is_part_a:
            assert written == {
                "oct.property.full.first.names": data["first_names"],
                "oct.property.family.names": data["family_names"],
                "oct.property.date.of.birth": data["date_of_birth"],
                "oct.property.street": data["street"],
                "oct.property.street.number": data["street_number"],
                "oct.property.postal.code": data["postal_code"],
                "oct.property.city": data["city"],
                "oct.property.country": data["country_of_residence"],
            }
        else:
            assert written == {
                "oct.property.full.first.names": data["first_names"],
                "oct.property.family.names": data["family_names"],
                f"oct.property.{data['document_type']}": data["document_number"],
            }
    count = len(exporting.statements[country])
    assert manifest["records"] == job.records_written == job.records_expected == count
    assert manifest["file"]["sha256"] == job.sha256  # type: ignore[index]
    assert (
        manifest["country"] == country
        and manifest["authority_certificate_sha256"] == job.authority_fingerprint
    )


def test_all_countries_is_a_batch_of_one_job_per_country_with_statements(
    exporting_factory: Factory, authority_keys: AuthorityKeys
) -> None:
    exporting = exporting_factory({"DE": 2, "MT": 1, "SE": 1})
    with exporting.initiative:
        jobs = export_request(country="all", actor="organiser@example.org")
        assert sorted(job.country for job in jobs) == ["DE", "MT", "SE"]
        batch = ExportBatch.objects.get()
        assert (batch.jobs_total, batch.remaining) == (3, 3)
        for job in jobs:
            export_run(job.pk)
        batch.refresh_from_db()
        assert batch.remaining == 0 and batch.finished_at is not None
        for job in ExportJob.objects.all():
            tree, _manifest = export_opened(job, authority_keys)
            assert tree.findtext("forCountry") == job.country
            assert len(list(tree.iter("signature"))) == len(exporting.statements[job.country])


def test_a_second_run_of_a_finished_job_does_nothing(exporting_factory: Factory) -> None:
    exporting = exporting_factory({"DE": 1})
    with exporting.initiative:
        (job,) = export_request(country="DE", actor="organiser@example.org")
        first = export_run(job.pk)
        job.refresh_from_db()
        before = (job.sha256, job.finished_at)
        second = export_run(job.pk)
        job.refresh_from_db()
    assert first.ran and not second.ran
    assert (job.sha256, job.finished_at) == before


def test_a_job_held_by_another_worker_is_left_alone(exporting_factory: Factory) -> None:
    from django.utils import timezone

    exporting = exporting_factory({"DE": 1})
    with exporting.initiative:
        (job,) = export_request(country="DE", actor="organiser@example.org")
        ExportJob.objects.filter(pk=job.pk).update(
            state=ExportJobState.RUNNING,
            lease_owner="other",
            lease_until=timezone.now() + datetime.timedelta(seconds=60),
        )
        outcome = export_run(job.pk)
        job.refresh_from_db()
    assert not outcome.ran and job.lease_owner == "other" and not job.object_key


def test_a_wrong_authority_key_cannot_decrypt(
    exporting_factory: Factory, authority_keys: AuthorityKeys
) -> None:
    from eci_crypto.certificates import self_signed_certificate_create

    exporting = exporting_factory({"DE": 1})
    with exporting.initiative:
        (job,) = export_request(country="DE", actor="organiser@example.org")
        export_run(job.pk)
        job.refresh_from_db()
    other_key, _certificate = self_signed_certificate_create("Someone else")
    with pytest.raises(ExportFileError, match="not encrypted for this key"):
        export_file_read(
            io.BytesIO(export_storage().read(job.object_key)),
            io.BytesIO(),
            recipient_key=private_key_load(other_key),
            expected_signer=platform_signing_identity().certificate,
        )


REFUSAL_WORDS = {"missing": "no competent", "unconfirmed": "not confirmed", "expired": "expired"}


@pytest.mark.parametrize("problem", sorted(REFUSAL_WORDS))
def test_an_export_to_a_country_without_a_usable_certificate_is_refused_saying_which(
    exporting_factory: Factory, django_db_blocker: object, problem: str
) -> None:
    from django.utils import timezone

    exporting = exporting_factory({"DE": 1, "FR": 1})
    authority = CompetentAuthority.objects.get(country="FR")
    saved = (authority.confirmed_at, authority.not_after)
    try:
        if problem == "missing":
            CompetentAuthority.objects.filter(country="FR").update(country="XX")
        elif problem == "unconfirmed":
            CompetentAuthority.objects.filter(country="FR").update(confirmed_at=None)
        else:
            CompetentAuthority.objects.filter(country="FR").update(not_after=timezone.now())
        with exporting.initiative:
            with pytest.raises(
                ExportRefusedError,
                match=f"FR: .*{REFUSAL_WORDS[problem]}",
            ):
                export_request(country="all", actor="organiser@example.org")
            assert not ExportJob.objects.exists() and not ExportBatch.objects.exists()
            (job,) = export_request(country="DE", actor="organiser@example.org")
            assert job.country == "DE"
    finally:
        CompetentAuthority.objects.filter(country__in=["FR", "XX"]).update(
            country="FR", confirmed_at=saved[0], not_after=saved[1]
        )


@pytest.mark.parametrize("country", ["", "XX", "GR", "../etc", "all; DROP"])
def test_a_request_for_an_unknown_country_is_refused(exporting_factory: Factory, country: str) -> None:
    exporting = exporting_factory({"DE": 1})
    with exporting.initiative:
        with pytest.raises(ExportRefusedError):
            export_request(country=country, actor="organiser@example.org")
        assert not ExportJob.objects.exists()


def test_requests_and_results_are_in_the_audit_log(exporting_factory: Factory) -> None:
    exporting = exporting_factory({"DE": 1})
    with exporting.initiative:
        (job,) = export_request(country="DE", actor="organiser@example.org")
        export_run(job.pk)
    actions = list(
        AuditEvent.objects.filter(initiative=exporting.initiative, action__startswith="export.").values_list(
            "action", flat=True
        )
    )
    assert sorted(actions) == ["export.done", "export.requested"]


def test_an_export_that_fails_mid_stream_stops_its_reader_and_leaves_no_file(
    exporting_factory: Factory, committed_db: None, export_folders: Path
) -> None:
    import threading

    exporting = exporting_factory({"DE": 600})
    with exporting.initiative:
        # One statement in the middle that cannot be written (a form revision the export does not know).
        middle = sorted(Statement.objects.values_list("submitted_at", "id"))[300][1]
        Statement.objects.filter(pk=middle).update(form_revision="unknown-revision")
        (job,) = export_request(country="DE", actor="t")
        with override_settings(EXPORT_FETCH_RECORDS=50):
            outcome = export_run(job.pk)
        job.refresh_from_db()
    assert outcome.state == ExportJobState.FAILED and str(middle) in job.error and not job.object_key
    assert not [thread for thread in threading.enumerate() if thread.name == "export-fetch"]
    folder = export_folders / "storage" / "exports" / exporting.initiative.schema_name / "DE"
    assert not folder.exists() or not list(folder.iterdir()), "nothing half-written left"


def test_an_unexpected_failure_mid_stream_stops_the_reader_while_the_error_is_still_held(
    exporting_factory: Factory, committed_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As Celery's retry machinery holds a failed task's exception (and with it the reading generator),
    the fetching thread must not wait for that to be let go."""
    import threading

    from eci_crypto.cms.writer import ExportFileWriter
    from exports import services

    class FailingWriter(ExportFileWriter):
        writes = 0

        def write(self, data: bytes | bytearray | memoryview) -> int:
            FailingWriter.writes += 1
            if FailingWriter.writes == 1:  # the first chunk: about 256 statements in, with more to read
                raise OSError("No space left on device")
            return super().write(data)

    monkeypatch.setattr(services, "ExportFileWriter", FailingWriter)
    exporting = exporting_factory({"DE": 1200})
    with exporting.initiative, override_settings(EXPORT_FETCH_RECORDS=20):
        (job,) = export_request(country="DE", actor="t")
        with pytest.raises(OSError) as held:
            export_run(job.pk)
        job.refresh_from_db()
    assert held.value is not None and job.state == ExportJobState.RUNNING and job.lease_until is not None
    assert job.lease_until <= timezone.now(), "the lease lapsed at once: the reconciler sends it again"
    assert not [thread for thread in threading.enumerate() if thread.name == "export-fetch"]


def test_the_lease_is_renewed_by_time_too_not_only_every_so_many_records(
    exporting_factory: Factory, committed_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from exports import services, snapshot

    renewals: list[dict[str, object]] = []
    renew = services._renew

    def counted_renew(job_id: int, owner: str, **progress: object) -> None:
        renewals.append(progress)
        renew(job_id, owner, **progress)

    monkeypatch.setattr(services, "_renew", counted_renew)
    monkeypatch.setattr(services._Progress, "CLOCK_RECORDS", 10)
    slow_open = snapshot.open_with

    def slowly(*args: object) -> bytes:
        time.sleep(0.002)  # a slow export: 200 records take 0.4 s, longer than the lease below
        return slow_open(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(snapshot, "open_with", slowly)
    exporting = exporting_factory({"FR": 200})
    with exporting.initiative, override_settings(EXPORT_LEASE_SECONDS=0.15, EXPORT_PROGRESS_RECORDS=10**9):
        (job,) = export_request(country="FR", actor="t")
        outcome = export_run(job.pk)
    assert outcome.state == ExportJobState.DONE
    by_time = [progress for progress in renewals if progress.get("records_written", 0) not in (0, 200)]
    assert len(by_time) >= 3, renewals


def test_a_renewed_signing_key_is_used_without_a_restart(export_folders: Path, tmp_path: Path) -> None:
    import os

    from eci_crypto.certificates import (
        certificate_fingerprint,
        certificate_load,
        self_signed_certificate_create,
    )

    key_file, certificate_file = tmp_path / "platform.key", tmp_path / "platform.crt"
    first_key, first_certificate = self_signed_certificate_create("First platform key")
    key_file.write_bytes(first_key)
    certificate_file.write_bytes(first_certificate)
    with override_settings(
        EXPORT_SIGNING_KEY_FILE=str(key_file), EXPORT_SIGNING_CERTIFICATE_FILE=str(certificate_file)
    ):
        before = platform_signing_identity().fingerprint
        second_key, second_certificate = self_signed_certificate_create("Renewed platform key")
        key_file.write_bytes(second_key)
        certificate_file.write_bytes(second_certificate)
        for path in (key_file, certificate_file):  # a later change time, whatever the clock's resolution
            os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
        after = platform_signing_identity().fingerprint
    assert before != after
    assert after == certificate_fingerprint(certificate_load(second_certificate))
