"""Fixtures of the export tests: the platform's signing identity and the export storage in this run's own
folders, one demonstration authority key registered for every Member State, and committed initiatives
with statements (the export streams from a connection of its own, which sees committed rows only)."""

from __future__ import annotations

import datetime
import io
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone
from pytest_django.plugin import DjangoDbBlocker

from collection.forms import StatementForm
from collection.services import statement_record
from eci_crypto.certificates import certificate_fingerprint, certificate_load, self_signed_certificate_create
from exports.storage import export_storage
from exports.storage.s3 import S3ExportStorage
from exports.xml_writer import InitiativeExportData, initiative_export_data
from regulation.annex_iii import FORM_REVISION
from regulation.member_states import member_states
from tenants.authorities import authority_confirm, authority_register
from tenants.db import connection
from tenants.models import CompetentAuthority, Initiative, InitiativeState, OrganiserMembership
from tenants.onboarding import initiative_onboard
from tenants.register import ContactPerson
from tenants.services import initiative_register_correct, initiative_transition
from tests.collection.signing import valid_form
from tests.conftest import onboarding_request
from tests.exports.xml_documents import _initiative
from tests.processes import committed_initiative_remove
from tests.tenants.certificates import certify_valid


@dataclass(frozen=True)
class AuthorityKeys:
    private_key_pem: bytes
    certificate_pem: bytes
    key_path: Path
    certificate_path: Path


@pytest.fixture(scope="session")
def export_folders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The export storage and the platform's signing key of this run (generated once)."""
    folder = tmp_path_factory.mktemp("exports")
    previous = (
        settings.EXPORT_STORAGE_URL,
        settings.EXPORT_SIGNING_KEY_FILE,
        settings.EXPORT_SIGNING_CERTIFICATE_FILE,
    )
    settings.EXPORT_STORAGE_URL = str(folder / "storage")
    settings.EXPORT_SIGNING_KEY_FILE = str(folder / "platform.key")
    settings.EXPORT_SIGNING_CERTIFICATE_FILE = str(folder / "platform.crt")
    private_key_pem, certificate_pem = self_signed_certificate_create("Test platform export signing")
    (folder / "platform.key").write_bytes(private_key_pem)
    (folder / "platform.crt").write_bytes(certificate_pem)
    yield folder
    (
        settings.EXPORT_STORAGE_URL,
        settings.EXPORT_SIGNING_KEY_FILE,
        settings.EXPORT_SIGNING_CERTIFICATE_FILE,
    ) = previous


@pytest.fixture(scope="session")
def authority_keys(
    export_folders: Path, django_db_setup: None, django_db_blocker: DjangoDbBlocker
) -> Iterator[AuthorityKeys]:
    """One authority key pair, registered and confirmed for every Member State (committed)."""
    private_key_pem, certificate_pem = self_signed_certificate_create("Test competent authority")
    key_path, certificate_path = export_folders / "authority.key", export_folders / "authority.crt"
    key_path.write_bytes(private_key_pem)
    certificate_path.write_bytes(certificate_pem)
    fingerprint = certificate_fingerprint(certificate_load(certificate_pem))
    with django_db_blocker.unblock():
        for code in member_states():
            authority_register(country=code, certificate_pem=certificate_pem, actor="test-setup")
            # Four eyes: another actor confirms what "test-setup" registered.
            authority_confirm(country=code, fingerprint=fingerprint, actor="test-setup-confirmation")
    yield AuthorityKeys(private_key_pem, certificate_pem, key_path, certificate_path)
    with django_db_blocker.unblock():
        CompetentAuthority.objects.all().delete()


def personal_data_of(country: str, number: int) -> dict[str, str]:
    """A valid statement's personal data, a different person for each `number`."""
    data = valid_form(country)
    data["family_names"] = f"{data['family_names']} {number}"
    if "document_number" in data:
        # A free-format document where the country accepts one; else its one valid national number.
        for document in member_states()[country].accepted_documents:
            attempt = {**data, "document_type": document, "document_number": f"X{number:07d}"}
            if _form(country, attempt).is_valid():
                data = attempt
                break
        else:
            assert number == 0, f"{country} accepts only a checked national number: one statement"
    form = _form(country, data)
    assert form.is_valid(), form.errors
    return form.personal_data()


def _form(country: str, data: dict[str, str]) -> StatementForm:
    return StatementForm(data, member_state=member_states()[country], signing_day=timezone.localdate())


@dataclass
class ExportingInitiative:
    initiative: Initiative
    statements: dict[str, list[tuple[uuid.UUID, dict[str, str]]]]  # country -> (id, personal data)


Factory = Callable[..., ExportingInitiative]

# The test actor of the state changes the fixtures make.
TEST_ACTOR = "test-setup"


def initiative_closed(initiative: Initiative) -> Initiative:
    """Collection ends: exports run only from closed (or submitted)."""
    return initiative_transition(initiative, InitiativeState.CLOSED, actor=TEST_ACTOR, reason="test")


def committed_initiative_with_statements(
    per_country: dict[str, int], *, state: str = InitiativeState.CLOSED
) -> ExportingInitiative:
    """An initiative whose statements were signed while collecting, then moved to `state` (closed by
    default, where exports run; "collecting" leaves it open). "ready": collection starts in a month, so
    there are no statements."""
    serial = uuid.uuid4().int % 90000 + 100000
    start = timezone.localdate()
    if state == InitiativeState.READY:
        assert not any(per_country.values()), "no statements before collection"
        start += datetime.timedelta(days=30)
    initiative = initiative_onboard(
        onboarding_request(
            f"exp{uuid.uuid4().hex[:8]}",
            serial,
            collection_start=start,
            title="Exports for everyone",
            subject="Subject",
            objectives="Objectives with <markup> & ]]> in them",
            register_url="https://citizens-initiative.europa.eu/initiatives/details/2026/000001",
            contact_persons=(
                ContactPerson("Zoë Ørsted", "zoe@example.org"),
                ContactPerson("Jens Nowak", "jens@example.org"),
            ),
        ),
        actor="test-setup",
        provision="now",
    )
    # Collection opened at onboarding: a further language comes in as an audited correction (REQ-10).
    initiative = initiative_register_correct(
        initiative,
        actor="test-setup",
        reason="The register's German title.",
        title={"en": "Exports for everyone", "de": "Exporte für alle"},
    )
    statements: dict[str, list[tuple[uuid.UUID, dict[str, str]]]] = {}
    with initiative:
        for country, count in per_country.items():
            for number in range(count):
                data = personal_data_of(country, number)
                statement = statement_record(country=country, personal_data=data, form_revision=FORM_REVISION)
                statements.setdefault(country, []).append((statement.pk, data))
    connection.set_schema_to_public()
    if state in (InitiativeState.CLOSED, InitiativeState.SUBMITTED):
        initiative = initiative_closed(initiative)
    if state == InitiativeState.SUBMITTED:
        certify_valid(initiative)  # REQ-01 before submission
    if state not in (InitiativeState.READY, InitiativeState.COLLECTING, InitiativeState.CLOSED):
        initiative = initiative_transition(initiative, state, actor=TEST_ACTOR, reason="test")
    assert initiative.state == state
    return ExportingInitiative(initiative, statements)


@pytest.fixture
def exporting_factory(authority_keys: AuthorityKeys, django_db_blocker: DjangoDbBlocker) -> Iterator[object]:
    made: list[Initiative] = []

    def make(per_country: dict[str, int], *, state: str = InitiativeState.CLOSED) -> ExportingInitiative:
        with django_db_blocker.unblock():
            created = committed_initiative_with_statements(per_country, state=state)
        made.append(created.initiative)
        return created

    with django_db_blocker.unblock():
        yield make
        for initiative in made:
            committed_initiative_remove(initiative)


def local_date(moment: datetime.datetime) -> datetime.date:
    return timezone.localdate(moment)


@pytest.fixture
def committed_db(django_db_setup: None, django_db_blocker: DjangoDbBlocker) -> Iterator[None]:
    """Database access without a test transaction: what the test writes is committed (clean it up)."""
    with django_db_blocker.unblock():
        yield


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3ExportStorage]:
    """The export storage on S3 (moto's server), in a bucket of the test's own."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    bucket = f"exports-{uuid.uuid4().hex[:12]}"
    with override_settings(
        EXPORT_STORAGE_URL=f"s3://{bucket}/platform/eu",
        EXPORT_S3_ENDPOINT_URL=moto_endpoint,
        EXPORT_S3_REGION="eu-west-1",
    ):
        storage = export_storage()
        assert isinstance(storage, S3ExportStorage)
        storage.client.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        yield storage


# The export XML tests (test_xml_writer*.py, test_export_schema.py) ------------------------------------------


@pytest.fixture
def initiative_data() -> InitiativeExportData:
    return initiative_export_data(_initiative())


# The verification tests (test_verify_export*.py, test_verifying_exports_guide.py) ---------------------------

Verify = Callable[..., tuple[dict[str, Any], str | None]]


@pytest.fixture
def verify(django_db_blocker: DjangoDbBlocker) -> Verify:
    """Runs the management command verify_export with every query refused (an authority has no
    database); returns its one JSON object and its error (None: success)."""

    def run(*arguments: str | Path) -> tuple[dict[str, Any], str | None]:
        stdout = io.StringIO()
        error = None
        with django_db_blocker.block():
            try:
                call_command("verify_export", *[str(argument) for argument in arguments], stdout=stdout)
            except CommandError as refusal:
                error = str(refusal)
        lines = stdout.getvalue().splitlines()
        assert len(lines) == 1, lines  # exactly one JSON object, success or not
        return json.loads(lines[0]), error

    return run


# The organisers of the /manage/ pages tests (test_organiser_*.py, which use _quick_password_hashing) -----

PASSWORD = "a long organiser passphrase 42"
MakeUser = Callable[..., User]


@pytest.fixture
def _quick_password_hashing() -> Iterator[None]:
    # The default hasher costs a second per sign-in; what is tested here does not depend on it.
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture
def make_user(exporting_factory: Factory) -> Iterator[MakeUser]:
    """Committed users, organisers of the given initiatives; removed with their sessions afterwards
    (before the initiatives: this fixture depends on the factory)."""
    made: list[User] = []

    def make(*organiser_of: Initiative, **fields: Any) -> User:
        user = get_user_model().objects.create_user(
            username=f"organiser-{uuid.uuid4().hex[:8]}@example.org", password=PASSWORD, **fields
        )
        for initiative in organiser_of:
            OrganiserMembership.objects.create(user=user, initiative=initiative)
        made.append(user)
        return user

    yield make
    ids = {str(user.pk) for user in made}
    for session in Session.objects.all():
        if session.get_decoded().get("_auth_user_id") in ids:
            session.delete()
    get_user_model().objects.filter(pk__in=[user.pk for user in made]).delete()
