"""GET / on an initiative's site: the initiative as registered, in the chosen language (REQ-10)."""

from __future__ import annotations

import pytest

from tenants.models import Initiative
from tenants.services import initiative_register_correct
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def multilingual(alpha: Initiative) -> Initiative:
    # alpha is collecting, its register texts frozen: they change by an audited correction (REQ-10).
    return initiative_register_correct(
        alpha,
        actor="test",
        reason="texts of the test",
        title={"en": "Clean rivers", "fr": "Des rivières propres"},
        subject={"en": "Rivers"},
        objectives={"en": "Protect rivers.", "fr": "Protéger les rivières."},
        register_url="https://register.example.eu/alpha",
    )


def test_page_shows_the_registered_information(multilingual: Initiative) -> None:
    response = client_for(multilingual).get("/")
    body = response.content.decode()
    assert response.status_code == 200
    for expected in (
        "Clean rivers",
        multilingual.registration_number,
        "Rivers",
        "Protect rivers.",
        "https://register.example.eu/alpha",
        multilingual.collection_start.isoformat(),
        multilingual.collection_end.isoformat(),
    ):
        assert expected in body


def test_chosen_language_is_used_with_fallback_to_the_registered_one(multilingual: Initiative) -> None:
    response = client_for(multilingual).get("/?lang=fr")
    body = response.content.decode()
    assert "Des rivières propres" in body and "Protéger les rivières." in body
    assert "Rivers" in body  # no French subject: the registered language's text stands in
    assert response["Content-Language"] == "fr" and '<html lang="fr">' in body


def test_browser_language_is_used_when_none_was_chosen(multilingual: Initiative) -> None:
    response = client_for(multilingual).get("/", HTTP_ACCEPT_LANGUAGE="fr-BE,fr;q=0.9")
    assert "Des rivières propres" in response.content.decode()


def test_a_browser_language_outside_the_eu_ones_gives_the_registered_language(alpha: Initiative) -> None:
    initiative_register_correct(
        alpha,
        actor="t",
        reason="texts of the test",
        registered_language="fr",
        title={"fr": "Des rivières", "en": "Rivers"},
        subject={"fr": "Rivières"},
        objectives={"fr": "Protéger les rivières."},
    )
    response = client_for(alpha).get("/", HTTP_ACCEPT_LANGUAGE="ja,zh;q=0.8")
    assert response["Content-Language"] == "fr"
    assert "Des rivières" in response.content.decode()


def test_unknown_language_falls_back_to_the_registered_language(multilingual: Initiative) -> None:
    response = client_for(multilingual).get("/?lang=zz")
    assert response.status_code == 200
    assert "Clean rivers" in response.content.decode()
    assert response["Content-Language"] == "en"


def test_texts_in_a_non_eu_language_are_refused(alpha: Initiative) -> None:
    with pytest.raises(ValueError, match="Not official EU languages"):
        initiative_register_correct(alpha, actor="t", reason="test", title={"en": "x", "xx": "y"})


def test_only_get_and_head_are_served(alpha: Initiative) -> None:
    assert client_for(alpha).post("/").status_code == 405
