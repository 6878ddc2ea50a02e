"""The demo initiative and operator account that `make dev` seeds (development only)."""

from __future__ import annotations

import base64
import contextlib
import datetime
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp.util import random_hex

from collection.forms import StatementForm
from collection.models import Statement
from collection.services import statement_record
from eci_platform.embedded import data_dir
from regulation.annex_iii import FORM_REVISION
from regulation.member_states import member_states
from tenants.audit import SYSTEM_ACTOR
from tenants.models import Initiative, OrganiserMembership, SealedTOTPDevice
from tenants.onboarding import OnboardingRequest, initiative_onboard
from tenants.register import ContactPerson
from tenants.selectors import initiative_by_slug
from tenants.services import initiative_details_save, initiative_register_correct

DEMO_SLUG = "demo"
OPERATOR_USERNAME = "operator"
ORGANISER_USERNAME = "organiser"
DEVELOPMENT_DEVICE = "Development authenticator"


@dataclass(frozen=True)
class DemoCredentials:
    username: str
    password: str
    totp_file: Path  # the second factor's otpauth:// URL and secret, for an authenticator app


def _generated_password(file_name: str) -> str:
    """A development password, generated once in the data folder; the file is created 0600, never
    readable by others even for an instant."""
    password_file = data_dir() / file_name
    with contextlib.suppress(FileExistsError):
        descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(12))
    return password_file.read_text().strip()


def _development_totp_ensure(user: User, file_name: str) -> Path:
    """A confirmed TOTP device for a demo account, its secret generated once and kept, as an otpauth://
    URL and as base32 text, in a 0600 file of the data folder: add it to an authenticator app."""
    secret_file = data_dir() / file_name
    with contextlib.suppress(FileExistsError):
        descriptor = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        device = TOTPDevice(user=user, key=random_hex(20))
        with os.fdopen(descriptor, "w") as handle:
            handle.write(f"{device.config_url}\n{base64.b32encode(device.bin_key).decode()}\n")
    url = secret_file.read_text().splitlines()[0]
    key = base64.b32decode(parse_qs(urlsplit(url).query)["secret"][0]).hex()
    device = SealedTOTPDevice.objects.filter(user=user, name=DEVELOPMENT_DEVICE).first()
    if device is None or device.bin_key.hex() != key or not device.confirmed:
        SealedTOTPDevice.objects.filter(user=user, name=DEVELOPMENT_DEVICE).delete()
        SealedTOTPDevice.for_secret(user, bytes.fromhex(key), name=DEVELOPMENT_DEVICE, confirmed=True).save()
    return secret_file


def operator_account_ensure() -> DemoCredentials:
    """A staff superuser for the console; its password is generated once and kept in the data folder."""
    password = _generated_password("operator-password")
    user_model = get_user_model()
    user = user_model.objects.filter(username=OPERATOR_USERNAME).first()
    if user is None:
        user = user_model.objects.create_superuser(OPERATOR_USERNAME, "", password)
    elif not user.check_password(password):
        user.set_password(password)
        user.save(update_fields=["password"])
    totp = _development_totp_ensure(user, "operator-totp")
    return DemoCredentials(OPERATOR_USERNAME, password, totp)


def organiser_account_ensure(initiative: Initiative) -> DemoCredentials:
    """An organiser of the demo initiative (for its /manage/ pages); password generated once."""
    password = _generated_password("organiser-password")
    user_model = get_user_model()
    user = user_model.objects.filter(username=ORGANISER_USERNAME).first()
    if user is None:
        user = user_model.objects.create_user(ORGANISER_USERNAME, "organiser@demo.example", password)
    elif not user.check_password(password):
        user.set_password(password)
        user.save(update_fields=["password"])
    OrganiserMembership.objects.get_or_create(user=user, initiative=initiative)
    totp = _development_totp_ensure(user, "organiser-totp")
    return DemoCredentials(ORGANISER_USERNAME, password, totp)


def demo_initiative_ensure() -> Initiative:
    """A demo initiative that is collecting now, with its texts in three languages."""
    existing = initiative_by_slug(DEMO_SLUG)
    if existing is not None:
        return existing
    today = timezone.localdate()
    registered_on = today - datetime.timedelta(days=30)
    initiative = initiative_onboard(
        OnboardingRequest(
            slug=DEMO_SLUG,
            registration_number=f"ECI({registered_on.year})000001",
            title=DEMO_TEXTS["title"]["en"],
            subject=DEMO_TEXTS["subject"]["en"],
            objectives=DEMO_TEXTS["objectives"]["en"],
            register_url="https://citizens-initiative.europa.eu/",
            # As on the Commission's register; the export files name them (export_format.md).
            contact_persons=(
                ContactPerson("Demo Representative", "representative@demo.example"),
                ContactPerson("Demo Substitute", "substitute@demo.example"),
            ),
            registered_on=registered_on,
            collection_start=today,
            language="en",
        ),
        actor=SYSTEM_ACTOR,
        provision="now",
    )
    # Collection opened at onboarding, so the register texts are frozen (REQ-10): the translations
    # come in as the operator would add them afterwards, by an audited correction with a reason.
    initiative = initiative_register_correct(
        initiative,
        actor=SYSTEM_ACTOR,
        reason="Demo: the register's German and French texts.",
        title=DEMO_TEXTS["title"],
        subject=DEMO_TEXTS["subject"],
        objectives=DEMO_TEXTS["objectives"],
    )
    initiative.website_url = "https://demo.example/"
    return initiative_details_save(initiative, actor=SYSTEM_ACTOR, fields=["website_url"])


DEMO_TEXTS = {
    "title": {
        "en": "Clean air for every school",
        "de": "Saubere Luft für jede Schule",
        "fr": "Un air pur pour chaque école",
    },
    "subject": {
        "en": "Air quality limits around schools across the Union.",
        "de": "Grenzwerte für die Luftqualität rund um Schulen in der ganzen Union.",
        "fr": "Des valeurs limites de qualité de l'air autour des écoles dans toute l'Union.",
    },
    "objectives": {
        "en": "We ask the Commission to propose binding air quality limits around schools.",
        "de": "Wir fordern die Kommission auf, verbindliche Grenzwerte rund um Schulen vorzuschlagen.",
        "fr": "Nous demandons à la Commission de proposer des valeurs limites contraignantes.",
    },
}


DEMO_SIGNATORIES = [
    (
        "DE",
        {
            "first_names": "Erika",
            "family_names": "Mustermann",
            "street": "Heidestraße",
            "street_number": "17",
            "postal_code": "51147",
            "city": "Köln",
            "country_of_residence": "DE",
            "date_of_birth": "1964-08-12",
        },
    ),
    (
        "FR",
        {
            "first_names": "Marie Claire",
            "family_names": "Dupont",
            "street": "Rue de Rivoli",
            "street_number": "1",
            "postal_code": "75001",
            "city": "Paris",
            "country_of_residence": "FR",
            "date_of_birth": "1990-02-28",
        },
    ),
    (
        "AT",
        {
            "first_names": "Johann",
            "family_names": "Gruber",
            "document_type": "passport",
            "document_number": "P1234567",
        },
    ),
    (
        "IT",
        {
            "first_names": "Giulia",
            "family_names": "Rossi",
            "document_type": "passport",
            "document_number": "YA1234567",
        },
    ),
]


def demo_statements_ensure(initiative: Initiative) -> int:
    """A few statements of invented people, so that counts and exports have something to show. Recorded
    once (only while the initiative has none)."""
    with initiative:
        if Statement.objects.exists():
            return 0
        for country, answers in DEMO_SIGNATORIES:
            # Through the form, as a citizen's answers would go: the demo stores nothing a form would refuse.
            form = StatementForm(
                {**answers, "declaration": "on"},
                member_state=member_states()[country],
                signing_day=timezone.localdate(),
            )
            if not form.is_valid():
                raise ValueError(f"Demo statement of {country} is invalid: {form.errors.as_text()}")
            statement_record(country=country, personal_data=form.personal_data(), form_revision=FORM_REVISION)
    return len(DEMO_SIGNATORIES)
