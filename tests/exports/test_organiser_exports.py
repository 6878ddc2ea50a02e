"""The organisers' export pages under /manage/exports/: requesting exports (one country or all), refusals
and bad input, following the jobs, and short-lived download links (local storage and S3). Against
committed initiatives with statements (real tenants with domains), the real session table and Redis; jobs
run inline with export_run (no Celery worker listens in tests)."""

from __future__ import annotations

import datetime
import html
import json
import re
import time
import types
import urllib.parse
import urllib.request
from typing import Any

import pytest
from django.conf import settings
from django.core import signing
from django.test import Client, override_settings

from exports.downloads import DownloadKind, export_download_token
from exports.models import ExportBatch, ExportJob, ExportJobState
from exports.selectors import UNCLAIMED_GRACE, export_jobs_to_resume
from exports.services import export_run
from exports.storage import export_storage
from exports.storage.local import LocalExportStorage
from exports.storage.s3 import S3ExportStorage
from tenants.models import CompetentAuthority, Initiative
from tests.exports.conftest import Factory, MakeUser
from tests.exports.organisers import EXPORTS, audit_of, done_job, jobs_of, page_text, signed_in

pytestmark = pytest.mark.usefixtures("_quick_password_hashing")


def batches_of(initiative: Initiative) -> list[ExportBatch]:
    with initiative:
        return list(ExportBatch.objects.order_by("pk"))


def link_for(client: Client, job: ExportJob, kind: str = "file") -> str:
    """The link the download page gives (a page, not a redirect: see exports.views.export_link_create)."""
    response = client.post(f"{EXPORTS}{job.pk}/link/", {"kind": kind})
    assert response.status_code == 200, response.content.decode()
    found = re.search(r'id="download-link" href="([^"]+)"', response.content.decode())
    assert found, response.content.decode()
    return html.unescape(found.group(1))


def streamed(response: Any) -> bytes:
    try:
        return b"".join(response.streaming_content)
    finally:
        response.close()


# -- requesting exports -------------------------------------------------------------------------------------


def test_requesting_one_country_creates_its_job_and_says_so(
    exporting_factory: Factory, make_user: MakeUser
) -> None:
    exporting = exporting_factory({"DE": 2, "MT": 1})
    organiser = make_user(exporting.initiative)
    client = signed_in(exporting.initiative, organiser)
    assert '<meta http-equiv="refresh"' not in page_text(client.get(EXPORTS))

    response = client.post(EXPORTS, {"country": "DE"})
    assert (response.status_code, response["Location"]) == (303, EXPORTS)
    (job,) = jobs_of(exporting.initiative)
    assert (job.country, job.state, job.requested_by) == ("DE", ExportJobState.QUEUED, organiser.username)
    (requested,) = audit_of(exporting.initiative, "export.requested")
    assert requested.actor == organiser.username and requested.details["jobs"] == [job.pk]

    page = page_text(client.get(EXPORTS))
    assert f"Export requested: job {job.pk} (DE)." in page
    assert '<meta http-equiv="refresh" content="5">' in page  # while the job is queued
    assert "Germany (DE)" in page and "0 of \N{EN DASH}" in page

    with exporting.initiative:
        export_run(job.pk)
        job.refresh_from_db()
    page = page_text(client.get(EXPORTS))
    assert '<meta http-equiv="refresh"' not in page
    assert job.sha256 in page and "2 of 2" in page
    assert f'action="{EXPORTS}{job.pk}/link/"' in page


def test_requesting_all_countries_creates_a_batch_of_one_job_per_country(
    exporting_factory: Factory, make_user: MakeUser
) -> None:
    exporting = exporting_factory({"DE": 1, "MT": 1})
    organiser = make_user(exporting.initiative)
    client = signed_in(exporting.initiative, organiser)

    response = client.post(EXPORTS, {"country": "all"})
    assert response.status_code == 303
    jobs = jobs_of(exporting.initiative)
    (batch,) = batches_of(exporting.initiative)
    assert sorted(job.country for job in jobs) == ["DE", "MT"]
    assert {job.batch_id for job in jobs} == {batch.pk} and batch.requested_by == organiser.username
    (requested,) = audit_of(exporting.initiative, "export.requested")
    assert requested.details["batch"] == batch.pk
    page = page_text(client.get(EXPORTS))
    listed = ", ".join(f"job {job.pk} ({job.country})" for job in jobs)
    assert f"requested as batch {batch.pk}: {listed}." in page
    assert "Requests for all countries" in page


def test_a_refused_export_is_a_400_with_the_reason_and_creates_nothing(
    exporting_factory: Factory, make_user: MakeUser
) -> None:
    exporting = exporting_factory({"DE": 1, "FR": 1})
    client = signed_in(exporting.initiative, make_user(exporting.initiative))
    saved = CompetentAuthority.objects.get(country="FR").confirmed_at
    CompetentAuthority.objects.filter(country="FR").update(confirmed_at=None)
    try:
        for country in ("FR", "all"):
            response = client.post(EXPORTS, {"country": country})
            assert response.status_code == 400, country
            assert "FR: the authority's certificate is registered but its fingerprint is not confirmed." in (
                page_text(response)
            )
    finally:
        CompetentAuthority.objects.filter(country="FR").update(confirmed_at=saved)
    assert jobs_of(exporting.initiative) == [] and batches_of(exporting.initiative) == []
    assert audit_of(exporting.initiative, "export.requested") == []


def test_all_countries_without_any_statement_is_refused(
    exporting_factory: Factory, make_user: MakeUser
) -> None:
    exporting = exporting_factory({})
    client = signed_in(exporting.initiative, make_user(exporting.initiative))
    response = client.post(EXPORTS, {"country": "all"})
    assert response.status_code == 400 and "There are no statements to export yet." in page_text(response)
    assert batches_of(exporting.initiative) == []


def test_a_broker_outage_still_saves_the_request_for_the_reconciler(
    exporting_factory: Factory, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kombu.exceptions import OperationalError

    from exports.tasks import run_export

    def broker_down(*args: object, **kwargs: object) -> None:
        raise OperationalError("Error 111 connecting to the broker. Connection refused.")

    monkeypatch.setattr(run_export, "delay", broker_down)
    exporting = exporting_factory({"DE": 1})
    client = signed_in(exporting.initiative, make_user(exporting.initiative))
    assert client.post(EXPORTS, {"country": "DE"}).status_code == 303  # not a 500
    (job,) = jobs_of(exporting.initiative)
    with exporting.initiative:
        earlier = job.requested_at - UNCLAIMED_GRACE - datetime.timedelta(seconds=1)
        ExportJob.objects.filter(pk=job.pk).update(requested_at=earlier)
        assert list(export_jobs_to_resume()) == [job]


BAD_INPUTS: dict[str, dict[str, str]] = {
    "missing": {},
    "empty": {"country": ""},
    "unknown code": {"country": "XX"},
    "ISO code for Greece": {"country": "GR"},
    "lower case": {"country": "de"},
    "path": {"country": "../etc"},
    "injection": {"country": "all; DROP TABLE exports_exportjob"},
    "NUL": {"country": "DE\x00"},
    "huge": {"country": "A" * 200_000},
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_a_400_with_a_clear_message_and_creates_nothing(
    exporting_factory: Factory, make_user: MakeUser, case: str
) -> None:
    exporting = exporting_factory({"DE": 1})
    client = signed_in(exporting.initiative, make_user(exporting.initiative))
    response = client.post(EXPORTS, BAD_INPUTS[case])
    assert response.status_code == 400
    text = page_text(response)
    assert "Choose a Member State" in text and 'aria-invalid="true"' in text
    sent = BAD_INPUTS[case].get("country", "")
    if len(sent) > 3:
        assert sent not in text  # the message never repeats what was sent
    assert jobs_of(exporting.initiative) == [] and batches_of(exporting.initiative) == []


def test_a_body_over_the_upload_limit_is_a_400(exporting_factory: Factory, make_user: MakeUser) -> None:
    exporting = exporting_factory({"DE": 1})
    client = signed_in(exporting.initiative, make_user(exporting.initiative))
    too_big = "A" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    assert client.post(EXPORTS, {"country": too_big}).status_code == 400
    assert jobs_of(exporting.initiative) == []


# -- downloads ----------------------------------------------------------------------------------------------


def test_a_download_link_streams_the_stored_file_and_manifest_and_is_audited(
    exporting_factory: Factory, make_user: MakeUser
) -> None:
    exporting = exporting_factory({"DE": 2})
    organiser = make_user(exporting.initiative)
    client = signed_in(exporting.initiative, organiser)
    job = done_job(exporting, client)
    storage = export_storage()
    assert isinstance(storage, LocalExportStorage)

    link = link_for(client, job)
    assert link.startswith(f"{EXPORTS}{job.pk}/download/")
    response = client.get(link)
    assert response.status_code == 200
    assert streamed(response) == storage.read(job.object_key)
    assert response["Content-Type"] == "application/pkcs7-mime"
    assert response["Content-Disposition"] == 'attachment; filename="DE.xml.p7m"'
    assert "no-store" in response["Cache-Control"]

    manifest_link = link_for(client, job, "manifest")
    assert manifest_link.startswith(f"{EXPORTS}{job.pk}/manifest/")
    manifest = client.get(manifest_link)
    assert manifest.status_code == 200 and manifest["Content-Type"] == "application/json"
    assert manifest["Content-Disposition"] == 'attachment; filename="DE.manifest.json"'
    assert json.loads(streamed(manifest))["file"]["sha256"] == job.sha256

    assert client.get(link).status_code == 200  # a link works more than once while it lives
    streamed(client.get(link))
    links = audit_of(exporting.initiative, "export.download_link")
    downloads = audit_of(exporting.initiative, "export.download")
    assert [event.details["kind"] for event in links] == ["file", "manifest"]
    assert [event.details["kind"] for event in downloads] == ["file", "manifest", "file", "file"]
    for event in links + downloads:
        assert event.actor == organiser.username
        # Ids only: no personal data in the details.
        assert event.details == {"job": job.pk, "country": "DE", "kind": event.details["kind"]}


def _seconds_later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Moves the clock of Django's signing module (only) forward."""
    now = time.time()
    monkeypatch.setattr(signing, "time", types.SimpleNamespace(time=lambda: now + seconds))


def test_a_download_link_expires(
    exporting_factory: Factory, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporting = exporting_factory({"DE": 1})
    client = signed_in(exporting.initiative, make_user(exporting.initiative))
    job = done_job(exporting, client)
    link = link_for(client, job)

    _seconds_later(monkeypatch, settings.EXPORT_DOWNLOAD_LINK_SECONDS - 30)
    streamed(response := client.get(link))
    assert response.status_code == 200
    _seconds_later(monkeypatch, settings.EXPORT_DOWNLOAD_LINK_SECONDS + 5)
    expired = client.get(link)
    assert expired.status_code == 403 and "This download link has expired" in page_text(expired)
    with override_settings(EXPORT_DOWNLOAD_LINK_SECONDS=60):
        _seconds_later(monkeypatch, 90)
        assert client.get(link).status_code == 403
    assert len(audit_of(exporting.initiative, "export.download")) == 1


def test_a_download_link_works_only_for_its_organiser_job_kind_and_site(
    exporting_factory: Factory, make_user: MakeUser
) -> None:
    a, b = exporting_factory({"DE": 1}), exporting_factory({"DE": 1})
    organiser = make_user(a.initiative, b.initiative)
    on_a = signed_in(a.initiative, organiser)
    job = done_job(a, on_a)
    link = link_for(on_a, job)
    token = link.rstrip("/").rsplit("/", 1)[1]

    colleague = signed_in(a.initiative, make_user(a.initiative))
    assert colleague.get(link).status_code == 403  # another organiser of the same initiative
    assert on_a.get(f"{EXPORTS}{job.pk}/manifest/{token}/").status_code == 403  # another kind
    assert (
        on_a.get(link.replace(token, token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))).status_code == 403
    )
    on_b = signed_in(b.initiative, organiser)  # the same organiser, on the other initiative's site
    assert on_b.get(link).status_code == 403
    b_only = signed_in(b.initiative, make_user(b.initiative))
    assert b_only.get(link).status_code == 403
    assert audit_of(a.initiative, "export.download") == []
    assert audit_of(b.initiative, "export.download") == []


def test_a_job_of_another_initiative_or_unfinished_is_not_found(
    exporting_factory: Factory, make_user: MakeUser
) -> None:
    a, b = exporting_factory({"DE": 1}), exporting_factory({"DE": 1})
    on_a = signed_in(a.initiative, make_user(a.initiative))
    job = done_job(a, on_a)
    on_b = signed_in(b.initiative, make_user(b.initiative))
    assert jobs_of(b.initiative) == []  # the job's number exists only in A's schema
    assert on_b.post(f"{EXPORTS}{job.pk}/link/", {"kind": "file"}).status_code == 404
    # Even with a genuine token of B's site for that number.
    b_user = on_b.session["_auth_user_id"]
    token = export_download_token(
        initiative=b.initiative, job_id=job.pk, user_id=int(b_user), kind=DownloadKind.FILE
    )
    assert on_b.get(f"{EXPORTS}{job.pk}/download/{token}/").status_code == 404

    assert on_a.post(EXPORTS, {"country": "DE"}).status_code == 303
    queued = jobs_of(a.initiative)[-1]
    assert queued.state == ExportJobState.QUEUED
    assert on_a.post(f"{EXPORTS}{queued.pk}/link/", {"kind": "file"}).status_code == 404
    assert on_a.post(f"{EXPORTS}{10**30}/link/", {"kind": "file"}).status_code == 404
    assert on_a.post(f"{EXPORTS}{job.pk}/link/", {"kind": "everything"}).status_code == 400
    assert on_a.post(f"{EXPORTS}{job.pk}/link/", {}).status_code == 400
    assert audit_of(a.initiative, "export.download_link") == []


# -- S3: the link sends the browser to the bucket's own short-lived URL ------------------------------------


def test_with_s3_the_download_redirects_to_a_short_lived_url_of_the_object(
    exporting_factory: Factory, make_user: MakeUser, s3: S3ExportStorage
) -> None:
    exporting = exporting_factory({"DE": 1})
    client = signed_in(exporting.initiative, make_user(exporting.initiative))
    job = done_job(exporting, client)

    response = client.get(link_for(client, job))
    assert response.status_code == 303
    location = str(response["Location"])
    assert location.startswith(s3.client.meta.endpoint_url) and "Expires=" in location
    assert "DE.xml.p7m" in urllib.parse.unquote(location), "saved under the name the authority expects"
    with urllib.request.urlopen(location, timeout=10) as fetched:  # noqa: S310  (our loopback server)
        assert fetched.read() == s3.read(job.object_key)
    assert len(audit_of(exporting.initiative, "export.download")) == 1
