"""Organisers' download links for finished exports.

A link is `/manage/exports/<job id>/download/<token>/` (or `.../manifest/<token>/`). The token is signed
with the platform's secret and binds the initiative's schema, the job, the organiser's user id and what
is downloaded; it expires after EXPORT_DOWNLOAD_LINK_SECONDS. It is not a bearer token: the download also
needs the same organiser's session on the same initiative's site. It carries ids only, no personal data,
since URLs end up in logs and browser histories.

Creating a link and every download are written to the platform audit log.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core import signing
from django.urls import reverse

from exports.format import FILE_SUFFIX, MANIFEST_SUFFIX
from exports.models import ExportJob, ExportJobState
from exports.storage import export_storage
from exports.storage.local import LocalExportStorage
from tenants.audit import audit_record
from tenants.models import Initiative

TOKEN_SALT = "exports.download-link"  # noqa: S105  (a signing namespace, not a secret)


class DownloadKind(enum.StrEnum):
    FILE = "file"  # the signed and encrypted export
    MANIFEST = "manifest"  # its manifest: counts, digests, certificate fingerprints


CONTENT_TYPES = {DownloadKind.FILE: "application/pkcs7-mime", DownloadKind.MANIFEST: "application/json"}
URL_NAMES = {DownloadKind.FILE: "manage-export-download", DownloadKind.MANIFEST: "manage-export-manifest"}


class ExportDownloadUnavailableError(Exception):
    """The job has no file (not finished, or the object is gone from the storage)."""


@dataclass(frozen=True)
class ExportDownload:
    """Where the bytes are: a short-lived URL of the storage (S3), or a local file the site streams."""

    filename: str
    content_type: str
    url: str | None = None
    path: Path | None = None


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=TOKEN_SALT)


def _payload(initiative: Initiative, job_id: int, user_id: int, kind: DownloadKind) -> dict[str, object]:
    return {"s": initiative.schema_name, "j": job_id, "u": user_id, "k": str(kind)}


def export_download_token(*, initiative: Initiative, job_id: int, user_id: int, kind: DownloadKind) -> str:
    # URL-safe base64 and colons: fits in one path segment.
    return _signer().sign_object(_payload(initiative, job_id, user_id, kind))


def export_download_link_create(
    *, initiative: Initiative, job: ExportJob, user_id: int, actor: str, kind: DownloadKind
) -> str:
    """The path of a new download link for a finished job, recorded in the audit log."""
    if job.state != ExportJobState.DONE or not job.object_key:
        raise ExportDownloadUnavailableError(f"Export job {job.pk} has not finished.")
    token = export_download_token(initiative=initiative, job_id=job.pk, user_id=user_id, kind=kind)
    audit_record(
        actor=actor,
        action="export.download_link",
        initiative=initiative,
        job=job.pk,
        country=job.country,
        kind=str(kind),
    )
    return reverse(URL_NAMES[kind], kwargs={"job_id": job.pk, "token": token})


def export_download_authorize(
    *, token: str, initiative: Initiative, job_id: int, user_id: int, kind: DownloadKind
) -> bool:
    """Whether `token` is a live link to this job, for this user, on this initiative, for this kind."""
    try:
        payload = _signer().unsign_object(token, max_age=settings.EXPORT_DOWNLOAD_LINK_SECONDS)
    except (signing.BadSignature, ValueError):  # SignatureExpired is a BadSignature; ValueError: bad JSON
        return False
    return bool(payload == _payload(initiative, job_id, user_id, kind))


def export_download_filename(job: ExportJob, kind: DownloadKind) -> str:
    """The name an organiser saves the file under, the one the authority expects: BE.xml.p7m."""
    return f"{job.country}{FILE_SUFFIX if kind == DownloadKind.FILE else MANIFEST_SUFFIX}"


def export_download_open(
    *, initiative: Initiative, job: ExportJob, actor: str, kind: DownloadKind
) -> ExportDownload:
    """Where to fetch the job's file or manifest from; the download is recorded in the audit log."""
    key = job.object_key if kind == DownloadKind.FILE else job.manifest_key
    if job.state != ExportJobState.DONE or not key:
        raise ExportDownloadUnavailableError(f"Export job {job.pk} has not finished.")
    filename = export_download_filename(job, kind)
    storage = export_storage()
    url = storage.download_url(key, settings.EXPORT_DOWNLOAD_LINK_SECONDS, filename=filename)
    path: Path | None = None
    if url is None:
        if not isinstance(storage, LocalExportStorage):
            raise ExportDownloadUnavailableError(f"The storage {storage.location} offers no download.")
        path = storage.path(key)
        if not path.is_file():
            raise ExportDownloadUnavailableError(f"The file of export job {job.pk} is gone.")
    audit_record(
        actor=actor,
        action="export.download",
        initiative=initiative,
        job=job.pk,
        country=job.country,
        kind=str(kind),
    )
    return ExportDownload(filename=filename, content_type=CONTENT_TYPES[kind], url=url, path=path)
