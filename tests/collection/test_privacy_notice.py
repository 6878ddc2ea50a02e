"""The privacy notice of the signing form names the controllers (REQ-16, REQ-17): the group of organisers
through its contact persons as the register publishes them, and the operator as joint controller, each
with a contact; and it keeps the destruction deadline of REQ-18."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test.utils import override_settings
from django.utils import translation
from django.utils.html import escape
from django.utils.translation import gettext

from collection.selectors import statements_destroyed_at_the_latest
from tenants.models import Initiative
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

CONTACT_PERSONS = [
    {"name": "Zoë Ørsted", "email": "zoe@example.eu"},
    {"name": "Jan <Nowak>", "email": "jan.nowak@example.eu"},
]
ORGANISERS = "The controller of your personal data is the group of organisers of this initiative."
OPERATOR = (
    "%(operator)s runs this collection system and is a joint controller of your personal data. Contact:"
)


def notice_of(page: str) -> str:
    start = page.index('<section aria-labelledby="privacy-title">')
    return page[start : page.index("</section>", start)]


@pytest.fixture
def registered(alpha: Initiative) -> Initiative:
    Initiative.objects.filter(pk=alpha.pk).update(contact_persons=CONTACT_PERSONS)
    alpha.refresh_from_db()
    return alpha


@pytest.fixture
def operator() -> Iterator[None]:
    with override_settings(
        OPERATOR_NAME="Example Platform Services SE", OPERATOR_CONTACT_EMAIL="privacy@platform.example.eu"
    ):
        yield


@pytest.mark.parametrize("country", ["DE", "AT"])  # a Part A and a Part B form
def test_the_notice_names_the_organisers_and_the_operator_with_their_contacts(
    registered: Initiative, operator: None, country: str
) -> None:
    notice = notice_of(client_for(registered).get(f"/sign/{country}/?lang=en").content.decode())
    assert ORGANISERS in notice
    for person in CONTACT_PERSONS:
        assert escape(person["name"]) in notice  # escaped: the register's text is not markup
        assert f'<a href="mailto:{person["email"]}">{person["email"]}</a>' in notice
    assert "Jan <Nowak>" not in notice
    assert "Example Platform Services SE runs this collection system and is a joint controller" in notice
    assert '<a href="mailto:privacy@platform.example.eu">privacy@platform.example.eu</a>' in notice
    deadline = statements_destroyed_at_the_latest(registered).isoformat()
    assert f"destroyed at the latest on {deadline}" in notice


@pytest.mark.parametrize("language", sorted(code for code, _name in settings.LANGUAGES if code != "en"))
def test_the_notice_names_the_controllers_in_every_language(
    registered: Initiative, operator: None, language: str
) -> None:
    notice = notice_of(client_for(registered).get(f"/sign/FR/?lang={language}").content.decode())
    with translation.override(language):
        organisers = gettext(ORGANISERS)
        operator_sentence = gettext(OPERATOR) % {"operator": "Example Platform Services SE"}
    assert organisers != ORGANISERS and organisers in notice
    assert escape(operator_sentence) in notice
    assert "Zoë Ørsted" in notice and "privacy@platform.example.eu" in notice
    assert statements_destroyed_at_the_latest(registered).isoformat() in notice


def test_without_contact_persons_the_notice_still_names_both_controllers(
    alpha: Initiative,
) -> None:
    Initiative.objects.filter(pk=alpha.pk).update(contact_persons=[])
    notice = notice_of(client_for(alpha).get("/sign/DE/?lang=en").content.decode())
    assert ORGANISERS in notice and "contact persons" not in notice and "<ul" not in notice
    assert f"{escape(settings.OPERATOR_NAME)} runs this collection system" in notice
    assert f"mailto:{settings.OPERATOR_CONTACT_EMAIL}" in notice


def test_the_operator_has_a_name_and_an_address_by_default() -> None:
    """Development defaults: a name that names someone, not a description of the role."""
    assert settings.OPERATOR_NAME and "this collection system" not in settings.OPERATOR_NAME
    assert "@" in settings.OPERATOR_CONTACT_EMAIL
