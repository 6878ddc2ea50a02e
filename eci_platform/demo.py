"""The demo initiative and operator account that `make dev` seeds (development only)."""

from __future__ import annotations

import datetime
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.utils import timezone

from eci_platform.embedded import data_dir
from tenants.models import Initiative
from tenants.selectors import initiative_by_slug
from tenants.services import (
    SYSTEM_ACTOR,
    OnboardingRequest,
    initiative_details_save,
    initiative_onboard,
    initiative_register_texts_update,
)

DEMO_SLUG = "demo"
OPERATOR_USERNAME = "operator"


@dataclass(frozen=True)
class DemoCredentials:
    username: str
    password: str


def operator_account_ensure() -> DemoCredentials:
    """A staff superuser for the console; its password is generated once and kept in the data folder."""
    password_file = data_dir() / "operator-password"
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(12))
        password_file.chmod(0o600)
    password = password_file.read_text().strip()
    user_model = get_user_model()
    user = user_model.objects.filter(username=OPERATOR_USERNAME).first()
    if user is None:
        user_model.objects.create_superuser(OPERATOR_USERNAME, "", password)
    elif not user.check_password(password):
        user.set_password(password)
        user.save(update_fields=["password"])
    return DemoCredentials(OPERATOR_USERNAME, password)


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
            title="Clean air for every school",
            registered_on=registered_on,
            collection_start=today,
            language="en",
        ),
        actor=SYSTEM_ACTOR,
        provision="now",
    )
    initiative = initiative_register_texts_update(
        initiative,
        actor=SYSTEM_ACTOR,
        title={
            "en": "Clean air for every school",
            "de": "Saubere Luft für jede Schule",
            "fr": "Un air pur pour chaque école",
        },
        subject={
            "en": "Air quality limits around schools across the Union.",
            "de": "Grenzwerte für die Luftqualität rund um Schulen in der ganzen Union.",
            "fr": "Des valeurs limites de qualité de l'air autour des écoles dans toute l'Union.",
        },
        objectives={
            "en": "We ask the Commission to propose binding air quality limits around schools.",
            "de": "Wir fordern die Kommission auf, verbindliche Grenzwerte rund um Schulen vorzuschlagen.",
            "fr": "Nous demandons à la Commission de proposer des valeurs limites contraignantes.",
        },
        register_url="https://citizens-initiative.europa.eu/",
    )
    # As on the Commission's register; the export files name them (export_format.md).
    initiative.contact_persons = [
        {"name": "Demo Representative", "email": "representative@demo.example"},
        {"name": "Demo Substitute", "email": "substitute@demo.example"},
    ]
    initiative.website_url = "https://demo.example/"
    return initiative_details_save(initiative, actor=SYSTEM_ACTOR, fields=["contact_persons", "website_url"])
