"""Onboarding: validating a new initiative, creating its rows, cloning its schema from the template
and creating its keys, in a transaction or in a worker; and migrating the platform's schemas."""

from __future__ import annotations

import contextlib
import datetime
import logging
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_tenants.clone import CloneSchema
from django_tenants.utils import schema_exists

from regulation.languages import OFFICIAL_LANGUAGE_CODES
from regulation.periods import COLLECTION_PERIOD, LATEST_START_AFTER_REGISTRATION
from tenants.audit import SYSTEM_ACTOR, audit_record
from tenants.db import connection
from tenants.keyring.keys import initiative_keys_create
from tenants.keyring.providers import key_provider
from tenants.models import (
    Domain,
    Initiative,
    InitiativeState,
)
from tenants.organisers import OrganiserError, organiser_invite
from tenants.register import (
    TEXT_MAX_LENGTH,
    ContactPerson,
    contact_persons_problems,
    register_url_problems,
)
from tenants.roles import STAFF_CANNOT_ORGANISE, user_privileged
from tenants.services import initiative_transition
from workers.base import task_send
from workers.transient import TRANSIENT_ERRORS

logger = logging.getLogger(__name__)

REGISTRATION_NUMBER = re.compile(r"^ECI\((?P<year>\d{4})\)(?P<serial>\d{6})$")
DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Subdomains the platform keeps for itself or that would confuse citizens.
RESERVED_SLUGS = frozenset(
    {
        "www",
        "api",
        "admin",
        "operator",
        "static",
        "media",
        "mail",
        "smtp",
        "public",
        "status",
        "help",
        "support",
        "login",
        "auth",
        "sso",
        "cdn",
        "assets",
        "docs",
    }
)


class OnboardingError(Exception):
    """Invalid onboarding input; `errors` maps each field to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items()))


@dataclass(frozen=True, kw_only=True)
class OnboardingRequest:
    slug: str
    registration_number: str
    # The register texts in the registered language (`language`); more languages come later, before
    # collection opens, through the operator console (REQ-10).
    title: str
    subject: str
    objectives: str
    register_url: str
    # The representative and the substitute first (Art. 5(3) of Regulation (EU) 2019/788).
    contact_persons: tuple[ContactPerson, ...]
    registered_on: datetime.date
    collection_start: datetime.date
    language: str = "en"
    organiser_email: str = ""


def initiative_domain_name(slug: str) -> str:
    return f"{slug}.{settings.PLATFORM_DOMAIN}"


def _new_schema_name() -> str:
    """Generated, never derived from user input: `i_` and 12 random hex digits."""
    while True:
        name = f"i_{secrets.token_hex(6)}"
        if not Initiative.objects.filter(schema_name=name).exists():
            return name


def onboarding_errors(request: OnboardingRequest) -> dict[str, list[str]]:
    """Everything wrong with an onboarding request, by field; empty when it is valid."""
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    slug = request.slug
    if not DNS_LABEL.fullmatch(slug):
        add(
            "slug",
            "The slug must be a DNS label: 1 to 63 lower-case letters, digits or hyphens, "
            "not starting or ending with a hyphen.",
        )
    elif slug in RESERVED_SLUGS:
        add("slug", f"The slug '{slug}' is reserved by the platform.")
    elif len(initiative_domain_name(slug)) > 253:
        add("slug", "The slug makes the host name longer than 253 characters.")
    elif Initiative.objects.filter(slug=slug).exists():
        add("slug", f"The slug '{slug}' is already taken.")

    match = REGISTRATION_NUMBER.fullmatch(request.registration_number)
    if not match:
        add("registration_number", "A registration number looks like ECI(2026)000001.")
    else:
        if int(match["year"]) != request.registered_on.year:
            add(
                "registration_number", "The year in the registration number must be the year of registration."
            )
        if Initiative.objects.filter(registration_number=request.registration_number).exists():
            add("registration_number", f"{request.registration_number} is already onboarded.")

    # REQ-10: collection opens only with the register data complete, so onboarding asks for all of it.
    for field, label in (("title", "title"), ("subject", "subject"), ("objectives", "objectives")):
        text: str = getattr(request, field)
        if not text.strip():
            add(field, f"The {label} is required (in the registered language).")
        elif len(text) > TEXT_MAX_LENGTH[field]:
            add(field, f"The {label} may be at most {TEXT_MAX_LENGTH[field]} characters long.")
    for message in register_url_problems(request.register_url.strip()):
        add("register_url", message)
    for message in contact_persons_problems(person.as_dict() for person in request.contact_persons):
        add("contact_persons", message)

    if request.language not in OFFICIAL_LANGUAGE_CODES:
        add("language", "The registered language must be one of the 24 official EU languages.")

    # REQ-05 and REQ-07: no collection before registration; start at most 6 months after it.
    if request.collection_start < request.registered_on:
        add("collection_start", "Collection cannot start before the registration date.")
    elif request.collection_start > request.registered_on + LATEST_START_AFTER_REGISTRATION:
        add("collection_start", "Collection must start no later than 6 months after registration.")
    elif request.collection_start + COLLECTION_PERIOD <= timezone.localdate():
        add("collection_start", "This collection period has already ended.")
    if request.registered_on > timezone.localdate():
        add("registered_on", "The registration date cannot be in the future.")

    if request.organiser_email:
        try:
            validate_email(request.organiser_email)
        except ValidationError:
            add("organiser_email", "Enter a valid e-mail address.")
        else:
            existing = get_user_model().objects.filter(username=request.organiser_email.lower()).first()
            if existing is not None and user_privileged(existing):
                add("organiser_email", STAFF_CANNOT_ORGANISE)
    return errors


def initiative_onboard(
    request: OnboardingRequest, *, actor: str, provision: Literal["now", "worker"]
) -> Initiative:
    """Create an initiative with its domain and first organiser, then provision its schema.

    `provision="now"` (command line) clones the schema in the same transaction, so a failure leaves
    nothing behind. `provision="worker"` (web console) commits the rows in the provisioning state, which
    no host serves, and hands the schema to a worker: schema creation never runs inside a web request.
    """
    errors = onboarding_errors(request)
    if request.organiser_email and provision == "worker":
        # No site answers the link before the worker has provisioned: invite from the console then.
        errors.setdefault("organiser_email", []).append(
            "Invite organisers once the initiative is provisioned (its Organisers page)."
        )
    if errors:
        raise OnboardingError(errors)

    try:
        initiative = _onboarding_write(request, actor=actor, provision=provision)
    except OrganiserError as error:  # the first organiser's invitation could not be made or sent
        raise OnboardingError({"organiser_email": error.messages}) from None
    except IntegrityError:
        # Another onboarding took the slug or the registration number since validation ran.
        raise OnboardingError(
            {"slug": ["The slug or the registration number was just taken by another onboarding."]}
        ) from None
    initiative.refresh_from_db()
    return initiative


def _onboarding_write(
    request: OnboardingRequest, *, actor: str, provision: Literal["now", "worker"]
) -> Initiative:
    with _keks_destroyed_on_failure() as created_keks, transaction.atomic():
        initiative = Initiative.objects.create(
            schema_name=_new_schema_name(),
            slug=request.slug,
            registration_number=request.registration_number,
            registered_on=request.registered_on,
            registered_language=request.language,
            languages=[request.language],
            title={request.language: request.title.strip()},
            subject={request.language: request.subject.strip()},
            objectives={request.language: request.objectives.strip()},
            register_url=request.register_url.strip(),
            contact_persons=[person.as_dict() for person in request.contact_persons],
            collection_start=request.collection_start,
            state=InitiativeState.PROVISIONING,
        )
        Domain.objects.create(domain=initiative_domain_name(request.slug), tenant=initiative, is_primary=True)
        audit_record(
            actor=actor,
            action="initiative.onboarded",
            initiative=initiative,
            schema=initiative.schema_name,
            registration_number=initiative.registration_number,
            provisioning=provision,
        )
        if provision == "now":
            _provision(initiative, actor=actor, created_keks=created_keks)
            if request.organiser_email:
                # The first organiser gets an invitation like any other (a password and a second factor
                # of their own); a message that cannot go out undoes the onboarding with it.
                organiser_invite(initiative, email=request.organiser_email, actor=actor)
        else:
            initiative_id = initiative.pk
            # robust: a broker outage must not turn a saved onboarding into an error page; the
            # reconciler re-sends provisioning that has not happened in time.
            transaction.on_commit(
                lambda: task_send("maintenance.provision_initiative", initiative_id), robust=True
            )
    return initiative


@contextlib.contextmanager
def _keks_destroyed_on_failure() -> Iterator[list[str]]:
    """The provider's KEKs are outside the database transaction: if the transaction does not commit,
    destroy the ones created inside it, so a failed onboarding leaves no key behind either."""
    created: list[str] = []
    try:
        yield created
    except BaseException:
        for reference in created:
            key_provider().destroy_kek(reference)
        raise


def _provision(initiative: Initiative, *, actor: str, created_keks: list[str]) -> None:
    """Clone the template schema, create the keys and make the initiative visible. Runs inside a
    transaction (see _keks_destroyed_on_failure)."""
    _schema_create(initiative)
    initiative_keys_create(initiative, created_keks=created_keks)
    audit_record(
        actor=actor,
        action="key.created",
        initiative=initiative,
        keys=[f"{key.purpose}:v{key.version}" for key in initiative.data_keys.all()],
        kek_ids=list(initiative.keks.values_list("pk", flat=True)),
    )
    initiative_transition(initiative, InitiativeState.READY, actor=actor)
    # An initiative whose collection period has already begun opens at once.
    if initiative.collection_start <= timezone.localdate() <= initiative.collection_end:
        initiative_transition(initiative, InitiativeState.COLLECTING, actor=actor)


# Serialises schema cloning: django-tenants replaces its clone function on every clone, and two
# transactions doing that at once can fail with "tuple concurrently updated".
_CLONE_LOCK = 0x45434931  # "ECI1"


def _schema_create(initiative: Initiative) -> None:
    """Clone the template (tables and its migration records), then run a real migrate on the copy: a
    no-op when the template is current, and the missing migrations when it is behind the code, so a
    schema is never recorded as migrated without being so."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CLONE_LOCK])
    CloneSchema().clone_schema(settings.INITIATIVE_TEMPLATE_SCHEMA, initiative.schema_name, "DATA")
    call_command(
        "migrate_schemas", tenant=True, schema_name=initiative.schema_name, interactive=False, verbosity=0
    )
    connection.set_schema_to_public()


def initiative_provision(initiative_id: int, *, actor: str = SYSTEM_ACTOR) -> Initiative | None:
    """Worker side of onboarding. Idempotent: a repeated delivery finds the work done and does nothing.
    On failure everything of the initiative is removed and the failure is audited."""
    initiative = Initiative.objects.filter(pk=initiative_id).first()
    if initiative is None or initiative.state != InitiativeState.PROVISIONING:
        return initiative
    try:
        with _keks_destroyed_on_failure() as created_keks, transaction.atomic():
            initiative = Initiative.objects.select_for_update().get(pk=initiative_id)
            if initiative.state != InitiativeState.PROVISIONING:
                return initiative
            _provision(initiative, actor=actor, created_keks=created_keks)
    except TRANSIENT_ERRORS:
        connection.set_schema_to_public()
        raise  # the task retries; nothing was created that needs undoing
    except Exception as error:
        connection.set_schema_to_public()
        _onboarding_discard(initiative, actor=actor, reason=type(error).__name__)
        raise
    return initiative


def _onboarding_discard(initiative: Initiative, *, actor: str, reason: str) -> None:
    # The schema and the keys need no cleanup: they were made inside the transaction that failed.
    with transaction.atomic():
        # The initiative's events stay, with its id and slug: the audit log is append-only.
        audit_record(
            actor=actor,
            action="initiative.provisioning_failed",
            initiative=initiative,
            schema=initiative.schema_name,
            reason=reason,
        )
        initiative.domains.all().delete()
        organiser_ids = list(initiative.organisers.values_list("user_id", flat=True))
        initiative.organisers.all().delete()
        # Accounts made for this onboarding only (never signed in, no other initiative) go too.
        get_user_model().objects.filter(
            pk__in=organiser_ids, last_login__isnull=True, organiser_of__isnull=True, is_staff=False
        ).delete()
        Initiative.objects.filter(pk=initiative.pk).delete()


def template_schema_ensure(*, verbosity: int = 0) -> None:
    """Create and migrate the template schema that new initiative schemas are cloned from."""
    template = settings.INITIATIVE_TEMPLATE_SCHEMA
    connection.set_schema_to_public()
    if not schema_exists(template):
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{template}"')
    call_command("migrate_schemas", tenant=True, schema_name=template, interactive=False, verbosity=verbosity)
    connection.set_schema_to_public()


def platform_migrate(*, verbosity: int = 0) -> None:
    """Migrate the public schema, the template and every initiative's schema."""
    call_command("migrate_schemas", interactive=False, verbosity=verbosity)
    template_schema_ensure(verbosity=verbosity)
