"""Onboarding: the service, the command, the worker path and bad input (REQ-05, REQ-07)."""

from __future__ import annotations

import datetime
import json
import re
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone
from django_tenants.utils import schema_exists

from collection.models import Statement
from tenants.db import connection
from tenants.models import (
    AuditEvent,
    Domain,
    Initiative,
    InitiativeState,
    OrganiserInvitation,
    OrganiserMembership,
)
from tenants.onboarding import OnboardingError, initiative_onboard, initiative_provision, onboarding_errors
from tests.conftest import client_for, onboarding_request
from tests.processes import free_port

pytestmark = pytest.mark.django_db


def _command(*args: str) -> dict[str, object]:
    out = StringIO()
    call_command("onboard_initiative", *args, "--json", stdout=out)
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1, "--json prints exactly one JSON object"
    result: dict[str, object] = json.loads(lines[0])
    return result


def _valid_args(slug: str = "gamma", number: str | None = None) -> list[str]:
    today = timezone.localdate()
    registered = today - datetime.timedelta(days=20)
    return [
        "--slug",
        slug,
        "--registration-number",
        number or f"ECI({registered.year})000123",
        "--title",
        "Gamma initiative",
        "--subject",
        "Gamma subject",
        "--objectives",
        "Gamma objectives",
        "--register-url",
        "https://citizens-initiative.europa.eu/initiatives/details/2026/000123_en",
        "--contact",
        "Eva Nowak <eva@example.eu>",
        "--contact",
        '"Ørsted, Jens" <jens@example.eu>',
        "--registered-on",
        registered.isoformat(),
        "--collection-start",
        today.isoformat(),
        "--organiser-email",
        "Organiser@Example.org",
    ]


def test_command_onboards_an_initiative_with_its_own_schema_domain_and_audit_trail() -> None:
    result = _command(*_valid_args())

    initiative = Initiative.objects.get(slug="gamma")
    assert result == {
        "slug": "gamma",
        "schema": initiative.schema_name,
        "domain": f"gamma.{settings.PLATFORM_DOMAIN}",
        "url": f"{settings.PUBLIC_URL_SCHEME}://gamma.{settings.PLATFORM_DOMAIN}"
        + (f":{settings.PUBLIC_URL_PORT}" if settings.PUBLIC_URL_PORT else "")
        + "/",
        "state": "collecting",
    }
    assert initiative.schema_name.startswith("i_") and len(initiative.schema_name) == 14
    assert schema_exists(initiative.schema_name)
    assert Domain.objects.get(tenant=initiative).is_primary
    # The first organiser is invited (a password and a second factor of their own), not made an account.
    assert not OrganiserMembership.objects.filter(initiative=initiative).exists()
    assert not get_user_model().objects.filter(username__iexact="organiser@example.org").exists()
    invitation = OrganiserInvitation.objects.get(initiative=initiative)
    assert invitation.email == "Organiser@example.org" and invitation.accepted_at is None  # domain folded
    (message,) = mail.outbox
    assert message.to == ["Organiser@example.org"]
    assert f"gamma.{settings.PLATFORM_DOMAIN}" in message.body and "/manage/invitation/" in message.body
    actions = list(
        AuditEvent.objects.filter(initiative=initiative).order_by("id").values_list("action", flat=True)
    )
    assert actions == [
        "initiative.onboarded",
        "key.created",
        "initiative.state_changed",
        "initiative.state_changed",
        "organiser.invited",
    ]
    # The new schema has the tenant tables, empty.
    with initiative:
        assert Statement.objects.count() == 0
    # And its site answers on its own subdomain.
    response = client_for(initiative).get("/")
    assert response.status_code == 200
    assert "Gamma initiative" in response.content.decode()


def test_an_initiative_whose_start_is_in_the_future_is_ready_not_collecting() -> None:
    today = timezone.localdate()
    initiative = initiative_onboard(
        onboarding_request("later", 5, collection_start=today + datetime.timedelta(days=30)),
        actor="test",
        provision="now",
    )
    assert initiative.state == InitiativeState.READY


def test_schema_name_never_comes_from_the_slug() -> None:
    initiative = initiative_onboard(onboarding_request("x-public", 6), actor="t", provision="now")
    assert "public" not in initiative.schema_name


BAD_INPUT = [
    ({"--slug": "Bad_Slug"}, "DNS label"),
    ({"--slug": "-leading"}, "DNS label"),
    ({"--slug": "a" * 64}, "DNS label"),
    ({"--slug": "www"}, "reserved"),
    ({"--slug": "alpha"}, "already taken"),
    ({"--registration-number": "ECI-2026-1"}, "looks like ECI(2026)000001"),
    ({"--registration-number": "ECI(1999)000001"}, "year of registration"),
    ({"--title": "   "}, "--title: The title is required"),
    ({"--subject": " "}, "--subject: The subject is required"),
    ({"--objectives": ""}, "--objectives: The objectives is required"),
    ({"--objectives": "x" * 1201}, "--objectives: The objectives may be at most 1200 characters"),
    ({"--register-url": ""}, "--register-url: The address of the initiative on the Commission's register"),
    ({"--register-url": "ftp://register.example.eu/x"}, "--register-url: The register URL must be an http"),
    ({"--collection-start": "1990-01-01"}, "before the registration date"),
    ({"--collection-start": "2999-01-01"}, "6 months after registration"),
    (
        {
            "--registered-on": "2024-01-10",
            "--registration-number": "ECI(2024)000123",
            "--collection-start": "2024-02-01",
        },
        "already ended",
    ),
    ({"--registered-on": "28/11/2026"}, "YYYY-MM-DD"),
    ({"--organiser-email": "not-an-address"}, "valid e-mail"),
]


def _args_with(override: dict[str, str], slug: str = "delta") -> list[str]:
    """The valid arguments with some replaced; "=" lets a value start with "-"."""
    args = _valid_args(slug=slug)
    pairs = list(zip(args[::2], args[1::2], strict=True))
    result = [f"{option}={override.get(option, value)}" for option, value in pairs]
    return result


def _nothing_written() -> tuple[int, ...]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM information_schema.schemata")
        schemas = cursor.fetchone()[0]
    return (Initiative.objects.count(), Domain.objects.count(), AuditEvent.objects.count(), schemas)


@pytest.mark.parametrize(("override", "message"), BAD_INPUT)
def test_bad_input_is_refused_with_a_clear_message_and_leaves_nothing(
    override: dict[str, str], message: str
) -> None:
    args = _args_with(override)
    before = _nothing_written()

    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("onboard_initiative", *args, "--json", stdout=StringIO())

    assert _nothing_written() == before


@pytest.mark.parametrize(
    "option", ["--subject", "--objectives", "--register-url", "--contact", "--title", "--slug"]
)
def test_each_register_option_is_required_and_a_missing_one_is_named(option: str) -> None:
    args = [argument for argument in _args_with({}) if not argument.startswith(f"{option}=")]
    before = _nothing_written()
    with pytest.raises(CommandError, match=f"required: {option}"):
        call_command("onboard_initiative", *args, "--json", stdout=StringIO())
    assert _nothing_written() == before


@pytest.mark.parametrize(
    ("contacts", "message"),
    [
        (["Eva Nowak <eva@example.eu>"], "--contact: Give at least two contact persons"),
        (["Eva Nowak <eva@example.eu>", "Eva N. <EVA@example.eu>"], "an e-mail address of their own"),
        (
            ["Eva Nowak <eva@example.eu>", "Jens <not-an-address>"],
            "--contact number 2: A contact person needs a valid e-mail",
        ),
        (
            ["Eva Nowak <eva@example.eu>", "jens@example.eu"],
            "--contact number 2: A contact person needs a name",
        ),
        (["Eva Nowak eva@example.eu", "Jens <jens@example.eu>"], "--contact number 1:"),
        (["A <a@example.eu>, B <b@example.eu>", "Jens <jens@example.eu>"], "--contact number 1: Give one"),
        (["Eva Nowak <eva@example.eu>", "  "], "--contact number 2: A contact person is empty"),
    ],
)
def test_bad_contacts_are_refused_naming_the_option_and_leave_nothing(
    contacts: list[str], message: str
) -> None:
    args = [argument for argument in _args_with({}) if not argument.startswith("--contact=")]
    args += [f"--contact={contact}" for contact in contacts]
    before = _nothing_written()
    out = StringIO()
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("onboard_initiative", *args, "--json", stdout=out)
    assert _nothing_written() == before
    refusal = json.loads(out.getvalue())
    assert list(refusal["errors"]) == ["contact_persons"]
    # The refusal never repeats what was typed: contact persons are personal data.
    for contact in contacts:
        for part in contact.replace("<", " ").replace(">", " ").replace(",", " ").split():
            if "@" in part:
                assert part.lower() not in refusal["error"].lower()


def test_the_register_data_is_stored_as_given() -> None:
    _command(*_valid_args(slug="omega"))
    initiative = Initiative.objects.get(slug="omega")
    assert initiative.title == {"en": "Gamma initiative"}
    assert initiative.subject == {"en": "Gamma subject"}
    assert initiative.objectives == {"en": "Gamma objectives"}
    assert (
        initiative.register_url == "https://citizens-initiative.europa.eu/initiatives/details/2026/000123_en"
    )
    assert initiative.contact_persons == [
        {"name": "Eva Nowak", "email": "eva@example.eu"},
        {"name": "Ørsted, Jens", "email": "jens@example.eu"},
    ]
    assert initiative.register_texts_frozen  # collecting from today: frozen from the start


def test_taken_registration_number_is_refused() -> None:
    alpha = Initiative.objects.get(slug="alpha")
    with pytest.raises(OnboardingError) as refused:
        initiative_onboard(
            onboarding_request("epsilon", 1, registration_number=alpha.registration_number),
            actor="t",
            provision="now",
        )
    assert "already onboarded" in " ".join(refused.value.errors["registration_number"])


def test_worker_path_keeps_the_initiative_invisible_until_provisioned(
    django_capture_on_commit_callbacks: pytest.FixtureRequest,
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:  # type: ignore[operator]
        initiative = initiative_onboard(onboarding_request("zeta", 7), actor="operator", provision="worker")
    assert initiative.state == InitiativeState.PROVISIONING
    assert not schema_exists(initiative.schema_name)
    assert len(callbacks) == 1, "provisioning is handed to a worker after commit"
    assert client_for(initiative).get("/").status_code == 404

    initiative_provision(initiative.pk)  # what the worker runs
    initiative.refresh_from_db()
    assert initiative.state == InitiativeState.COLLECTING
    assert schema_exists(initiative.schema_name)
    assert client_for(initiative).get("/").status_code == 200
    # A second delivery of the same message changes nothing.
    initiative_provision(initiative.pk)
    assert AuditEvent.objects.filter(initiative=initiative, action="initiative.state_changed").count() == 2
    assert AuditEvent.objects.filter(initiative=initiative, action="key.created").count() == 1


def test_failed_provisioning_removes_everything_and_is_audited(
    django_capture_on_commit_callbacks: pytest.FixtureRequest,
) -> None:
    with django_capture_on_commit_callbacks():  # type: ignore[operator]
        initiative = initiative_onboard(onboarding_request("eta", 8), actor="operator", provision="worker")
    # Something else took the schema name in the meantime: cloning must fail.
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA "{initiative.schema_name}"')

    with pytest.raises(Exception, match="already exists"):
        initiative_provision(initiative.pk)

    assert not Initiative.objects.filter(slug="eta").exists()
    assert not Domain.objects.filter(domain__startswith="eta.").exists()
    failure = AuditEvent.objects.get(action="initiative.provisioning_failed")
    assert failure.initiative_slug == "eta" and failure.details["reason"] == "ValidationError"


def test_lost_provisioning_is_re_sent_by_the_reconciler(
    django_capture_on_commit_callbacks: pytest.FixtureRequest,
) -> None:
    from eci_platform.celery import app
    from tenants.tasks import reconcile_provisioning

    with django_capture_on_commit_callbacks():  # type: ignore[operator]
        fresh = initiative_onboard(onboarding_request("iota", 9), actor="operator", provision="worker")
        lost = initiative_onboard(onboarding_request("kappa", 10), actor="operator", provision="worker")
    Initiative.objects.filter(pk=lost.pk).update(created_at=timezone.now() - datetime.timedelta(hours=1))

    app.conf.task_always_eager = True  # run the re-sent task inline, inside this test's transaction
    try:
        assert reconcile_provisioning() == [lost.pk]
    finally:
        app.conf.task_always_eager = False
    lost.refresh_from_db()
    fresh.refresh_from_db()
    assert lost.state == InitiativeState.COLLECTING
    assert fresh.state == InitiativeState.PROVISIONING


def test_a_slug_taken_between_validation_and_insert_is_a_clear_refusal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two operators onboarding the same slug at once: both pass validation, the database decides.
    monkeypatch.setattr("tenants.onboarding.onboarding_errors", lambda request: {})
    before = (Initiative.objects.count(), AuditEvent.objects.count())
    with pytest.raises(OnboardingError, match="just taken"):
        initiative_onboard(onboarding_request("alpha", 11), actor="t", provision="now")
    assert (Initiative.objects.count(), AuditEvent.objects.count()) == before


def test_json_refusal_is_one_json_object_with_the_errors_per_field() -> None:
    out = StringIO()
    args = [
        f"{option}={value}" for option, value in zip(_valid_args()[::2], _valid_args()[1::2], strict=True)
    ]
    args[0] = "--slug=www"
    with pytest.raises(CommandError):
        call_command("onboard_initiative", *args, "--json", stdout=out)
    refusal = json.loads(out.getvalue())
    assert refusal["errors"] == {"slug": ["The slug 'www' is reserved by the platform."]}
    assert "reserved" in refusal["error"]


def test_a_schema_cloned_from_a_template_that_is_behind_gets_the_missing_migrations() -> None:
    template = settings.INITIATIVE_TEMPLATE_SCHEMA
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE "{template}".collection_statement, "{template}".collection_contactemail')
        cursor.execute(f"DELETE FROM \"{template}\".django_migrations WHERE app = 'collection'")  # noqa: S608
    initiative = initiative_onboard(onboarding_request("lambda", 12), actor="t", provision="now")
    with initiative:
        assert Statement.objects.count() == 0  # the table is there: migrated, not merely recorded


def test_an_onboarding_whose_invitation_cannot_be_sent_leaves_nothing_behind() -> None:
    with (
        override_settings(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=free_port(),
        ),
        pytest.raises(OnboardingError) as refused,
    ):
        initiative_onboard(
            onboarding_request("mu", 13, organiser_email="new.organiser@example.org"),
            actor="operator",
            provision="now",
        )
    assert "could not be sent" in str(refused.value.errors["organiser_email"])
    assert not Initiative.objects.filter(slug="mu").exists()
    assert not OrganiserInvitation.objects.exists() and not AuditEvent.objects.filter(initiative_slug="mu")


def test_onboarding_in_the_console_invites_no_one_before_the_site_exists() -> None:
    with pytest.raises(OnboardingError) as refused:
        initiative_onboard(
            onboarding_request("mu", 13, organiser_email="new.organiser@example.org"),
            actor="operator",
            provision="worker",
        )
    assert "once the initiative is provisioned" in str(refused.value.errors["organiser_email"])
    assert not Initiative.objects.filter(slug="mu").exists()


@pytest.mark.parametrize("slug", ["ok\n", "ok\n\n", "\nok"])
def test_a_line_break_never_passes_for_a_slug(slug: str) -> None:
    assert "slug" in onboarding_errors(onboarding_request(slug, 14))


def test_an_initiatives_statements_are_indexed_for_exports_and_not_by_country_alone(
    alpha: Initiative,
) -> None:
    with alpha, connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = 'collection_statement'",
            [alpha.schema_name],
        )
        definitions = [row[0] for row in cursor.fetchall()]
    assert any("(country, submitted_at, id)" in definition for definition in definitions), definitions
    assert not any(definition.endswith("(country)") for definition in definitions), definitions
