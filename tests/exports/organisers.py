"""Helpers of the organisers' pages tests: the pages' addresses, signing in, the jobs and audit events of
an initiative, and an export requested through the page and run inline. The organisers themselves come
from the make_user fixture (conftest.py)."""

from __future__ import annotations

import html
from typing import Any

from django.contrib.auth.models import User
from django.test import Client

from exports.models import ExportJob, ExportJobState
from exports.services import export_run
from tenants.models import AuditEvent, Initiative
from tests.conftest import client_for
from tests.exports.conftest import PASSWORD, ExportingInitiative
from tests.second_factor import two_step_sign_in

LOGIN = "/manage/login/"
CODE = "/manage/login/code/"
ENROL = "/manage/login/enrol/"
EXPORTS = "/manage/exports/"
DASHBOARD = "/manage/"  # the organisers' home, where signing in leads


def signed_in(initiative: Initiative, user: User) -> Client:
    """Signed in over HTTP, both steps: the password, then the current code of the user's TOTP device."""
    client = client_for(initiative)
    response = two_step_sign_in(client, LOGIN, user, PASSWORD)
    assert response.status_code == 303, response.content.decode()
    return client


def page_text(response: Any) -> str:
    return html.unescape(response.content.decode())


def jobs_of(initiative: Initiative) -> list[ExportJob]:
    with initiative:
        return list(ExportJob.objects.order_by("pk"))


def audit_of(initiative: Initiative, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(initiative=initiative, action=action).order_by("pk"))


def done_job(exporting: ExportingInitiative, client: Client, country: str = "DE") -> ExportJob:
    """An export requested through the page and run inline, as a worker would."""
    assert client.post(EXPORTS, {"country": country}).status_code == 303
    job = jobs_of(exporting.initiative)[-1]
    with exporting.initiative:
        export_run(job.pk)
        job.refresh_from_db()
    assert job.state == ExportJobState.DONE, job.error
    return job
