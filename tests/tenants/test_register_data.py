"""Complete register data before collection, frozen afterwards, corrected only with a reason (REQ-10)."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from tenants.models import AuditEvent, Domain, Initiative, InitiativeState
from tenants.register import REGISTER_FIELDS, contact_person_parse, register_data_missing
from tenants.services import (
    RegisterCorrectionError,
    RegisterTextsFrozenError,
    TransitionError,
    initiative_details_save,
    initiative_register_correct,
    initiative_register_texts_update,
    initiative_transition,
    initiatives_follow_calendar,
)
from tests.second_factor import verified_login

pytestmark = pytest.mark.django_db


def _register_data(initiative: Initiative) -> dict[str, Any]:
    initiative.refresh_from_db()
    return {field: getattr(initiative, field) for field in REGISTER_FIELDS}


def _not_yet_open(initiative: Initiative, **fields: Any) -> Initiative:
    """The initiative as it is before collection opens: ready, texts not frozen."""
    Initiative.objects.filter(pk=initiative.pk).update(
        state=InitiativeState.READY, collection_opened_on=None, **fields
    )
    initiative.refresh_from_db()
    return initiative


# --- the parser of "Name <email>" ---


@pytest.mark.parametrize(
    ("text", "name", "email"),
    [
        ("Eva Nowak <eva@example.eu>", "Eva Nowak", "eva@example.eu"),
        ('"Ørsted, Jens"  <jens@example.eu> ', "Ørsted, Jens", "jens@example.eu"),
        ("Zoë   Ørsted <zoe@example.eu>", "Zoë Ørsted", "zoe@example.eu"),
    ],
)
def test_a_contact_person_is_read_as_on_the_register(text: str, name: str, email: str) -> None:
    person = contact_person_parse(text)
    assert (person.name, person.email) == (name, email)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "eva@example.eu",
        "Eva <eva>",
        "Eva Nowak eva@example.eu",
        "A <a@x.eu>, B <b@x.eu>",
        "Eva\n<e@x.eu>",
    ],
)
def test_what_is_not_one_contact_person_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="contact person"):
        contact_person_parse(text)


# --- the console's onboarding form ---


def _onboarding_form(**overrides: str) -> dict[str, str]:
    today = timezone.localdate()
    registered = today - datetime.timedelta(days=5)
    form = {
        "slug": "theta",
        "registration_number": f"ECI({registered.year})000778",
        "title": "Theta",
        "subject": "Theta's subject",
        "objectives": "Theta's objectives.",
        "register_url": "https://citizens-initiative.europa.eu/initiatives/details/2026/000778_en",
        "contact_persons": "Eva Nowak <eva@example.eu>\r\nJens Ørsted <jens@example.eu>",
        "registered_on": registered.isoformat(),
        "collection_start": today.isoformat(),
        "language": "en",
        "organiser_email": "",
    }
    form.update(overrides)
    return form


def test_the_console_onboards_with_the_register_data(
    operator: Client, django_capture_on_commit_callbacks: pytest.FixtureRequest
) -> None:
    with django_capture_on_commit_callbacks():  # type: ignore[operator]
        response = operator.post("/operator/tenants/initiative/onboard/", _onboarding_form())
    assert response.status_code == 302
    theta = Initiative.objects.get(slug="theta")
    assert theta.subject == {"en": "Theta's subject"} and theta.objectives == {"en": "Theta's objectives."}
    assert theta.register_url.endswith("000778_en")
    assert theta.contact_persons == [
        {"name": "Eva Nowak", "email": "eva@example.eu"},
        {"name": "Jens Ørsted", "email": "jens@example.eu"},
    ]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"subject": ""}, "subject", "This field is required."),
        ({"subject": "   "}, "subject", "This field is required."),
        ({"objectives": ""}, "objectives", "This field is required."),
        ({"objectives": "x" * 1201}, "objectives", "at most 1200 characters"),
        ({"register_url": ""}, "register_url", "This field is required."),
        ({"register_url": "not a url"}, "register_url", "Enter a valid URL."),
        ({"contact_persons": ""}, "contact_persons", "This field is required."),
        (
            {"contact_persons": "Eva Nowak <eva@example.eu>"},
            "contact_persons",
            "at least two contact persons",
        ),
        (
            {"contact_persons": "Eva Nowak <eva@example.eu>\nJens <jens@>"},
            "contact_persons",
            "Line 2: A contact person needs a valid e-mail address",
        ),
        (
            {"contact_persons": "eva@example.eu\nJens <jens@example.eu>"},
            "contact_persons",
            "Line 1: A contact person needs a name",
        ),
    ],
)
def test_the_console_refuses_incomplete_register_data_with_a_400_and_creates_nothing(
    operator: Client, overrides: dict[str, str], field: str, message: str
) -> None:
    before = (Initiative.objects.count(), Domain.objects.count(), AuditEvent.objects.count())
    response = operator.post("/operator/tenants/initiative/onboard/", _onboarding_form(**overrides))
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert field in errors and message in " ".join(errors[field]), errors
    assert (Initiative.objects.count(), Domain.objects.count(), AuditEvent.objects.count()) == before


# --- collection opens only with complete register data ---


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"subject": {}}, "the subject in the registered language (en)"),
        ({"objectives": {"fr": "Objectifs"}}, "the objectives in the registered language (en)"),
        ({"title": {"en": "  "}}, "the title in the registered language (en)"),
        ({"register_url": ""}, "the register URL"),
        (
            {"contact_persons": [{"name": "Eva Nowak", "email": "eva@example.eu"}]},
            "two valid contact persons",
        ),
        ({"contact_persons": [{"name": "", "email": "a@x.eu"}, {"name": "B", "email": "b@x.eu"}]}, "contact"),
    ],
)
def test_collection_does_not_open_with_incomplete_register_data(
    alpha: Initiative, fields: dict[str, Any], named: str
) -> None:
    _not_yet_open(alpha, **fields)
    events = AuditEvent.objects.count()
    with pytest.raises(TransitionError, match="register data is complete") as refused:
        initiative_transition(alpha, InitiativeState.COLLECTING, actor="tester")
    assert named in str(refused.value)
    alpha.refresh_from_db()
    assert (alpha.state, alpha.collection_opened_on) == (InitiativeState.READY, None)
    assert AuditEvent.objects.count() == events


def test_collection_opens_with_complete_register_data(alpha: Initiative) -> None:
    _not_yet_open(alpha)
    assert register_data_missing(alpha) == []
    initiative_transition(alpha, InitiativeState.COLLECTING, actor="tester")
    alpha.refresh_from_db()
    assert alpha.state == InitiativeState.COLLECTING and alpha.register_texts_frozen


def test_the_calendar_leaves_an_incomplete_initiative_ready_and_audits_it_once_a_day(
    alpha: Initiative, beta: Initiative
) -> None:
    today = timezone.localdate()
    _not_yet_open(alpha, register_url="")
    _not_yet_open(beta)

    assert initiatives_follow_calendar(today=today) == {"opened": 1, "closed": 0, "blocked": 1}
    alpha.refresh_from_db()
    beta.refresh_from_db()
    assert (alpha.state, beta.state) == (InitiativeState.READY, InitiativeState.COLLECTING)
    blocked = AuditEvent.objects.get(initiative=alpha, action="initiative.collection_blocked")
    assert blocked.details == {"day": today.isoformat(), "missing": ["the register URL"]}
    assert not AuditEvent.objects.filter(initiative=beta, action="initiative.collection_blocked").exists()

    # The task runs hourly: the same day adds no second row; the next day does.
    assert initiatives_follow_calendar(today=today) == {"opened": 0, "closed": 0, "blocked": 1}
    assert AuditEvent.objects.filter(initiative=alpha, action="initiative.collection_blocked").count() == 1
    initiatives_follow_calendar(today=today + datetime.timedelta(days=1))
    assert AuditEvent.objects.filter(initiative=alpha, action="initiative.collection_blocked").count() == 2

    # Completed, it opens on the next run.
    Initiative.objects.filter(pk=alpha.pk).update(register_url="https://register.example.eu/alpha")
    assert initiatives_follow_calendar(today=today)["opened"] == 1
    alpha.refresh_from_db()
    assert alpha.state == InitiativeState.COLLECTING


# --- frozen once collection opened ---


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", {"en": "Another title"}),
        ("subject", {"en": "Another subject"}),
        ("objectives", {"en": "Other objectives"}),
        ("register_url", "https://register.example.eu/other"),
        ("contact_persons", [{"name": "X", "email": "x@example.eu"}, {"name": "Y", "email": "y@example.eu"}]),
        ("languages", ["en", "fr"]),
        ("registered_language", "fr"),
    ],
)
def test_frozen_register_fields_are_refused_by_the_service(alpha: Initiative, field: str, value: Any) -> None:
    assert alpha.register_texts_frozen
    before, events = _register_data(alpha), AuditEvent.objects.count()
    setattr(alpha, field, value)
    with pytest.raises(RegisterTextsFrozenError, match=f"frozen since collection opened.*{field}"):
        initiative_details_save(alpha, actor="tester", fields=[field, "website_url"])
    assert _register_data(alpha) == before
    assert AuditEvent.objects.count() == events


def test_the_texts_update_is_refused_once_frozen_and_leaves_the_object_alone(alpha: Initiative) -> None:
    title = dict(alpha.title)
    with pytest.raises(RegisterTextsFrozenError):
        initiative_register_texts_update(
            alpha, actor="tester", title={"en": "New"}, subject={"en": "New"}, objectives={"en": "New"}
        )
    assert alpha.title == title
    alpha.refresh_from_db()
    assert alpha.title == title


def test_details_outside_the_register_stay_editable_once_frozen(alpha: Initiative) -> None:
    alpha.website_url, alpha.altcha_cost = "https://alpha.example.org/", 12345
    initiative_details_save(alpha, actor="tester", fields=["website_url", "altcha_cost"])
    alpha.refresh_from_db()
    assert (alpha.website_url, alpha.altcha_cost) == ("https://alpha.example.org/", 12345)


def test_an_unchanged_register_field_passes_once_frozen(alpha: Initiative) -> None:
    # The console posts every field; what did not change is not a change.
    alpha.website_url = "https://alpha.example.org/"
    initiative_details_save(alpha, actor="tester", fields=["title", "contact_persons", "website_url"])
    event = AuditEvent.objects.filter(initiative=alpha, action="initiative.details_updated").latest("id")
    assert event.details["fields"] == ["website_url"]


def _change_form(initiative: Initiative, **overrides: str) -> dict[str, str]:
    form = {
        "registered_language": initiative.registered_language,
        "languages": ",".join(initiative.languages),
        "title": json.dumps(initiative.title),
        "subject": json.dumps(initiative.subject),
        "objectives": json.dumps(initiative.objectives),
        "register_url": initiative.register_url,
        "contact_persons": json.dumps(initiative.contact_persons),
        "website_url": initiative.website_url,
        "altcha_cost": "",
        **{
            f"{prefix}-{field}": "0"
            for prefix in ("keks", "data_keys")
            for field in ("TOTAL_FORMS", "INITIAL_FORMS")
        },
    }
    form.update(overrides)
    return form


def test_the_console_shows_frozen_register_fields_read_only_and_ignores_posted_changes(
    operator: Client, alpha: Initiative
) -> None:
    url = f"/operator/tenants/initiative/{alpha.pk}/change/"
    page = operator.get(url).content.decode()
    for field in REGISTER_FIELDS:
        assert f'name="{field}"' not in page, field
    assert 'name="website_url"' in page
    assert f"/operator/tenants/initiative/{alpha.pk}/correct/" in page

    before = _register_data(alpha)
    response = operator.post(
        url,
        _change_form(alpha, title='{"en": "Renamed"}', website_url="https://alpha.example.org/"),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert _register_data(alpha) == before
    assert alpha.website_url == "https://alpha.example.org/"


def test_the_console_edits_register_fields_before_collection_opens(
    operator: Client, alpha: Initiative
) -> None:
    _not_yet_open(alpha)
    page = operator.get(f"/operator/tenants/initiative/{alpha.pk}/change/").content.decode()
    assert 'name="title"' in page


# --- the audited correction ---


def test_a_correction_needs_a_reason(alpha: Initiative) -> None:
    before, events = _register_data(alpha), AuditEvent.objects.count()
    for reason in ("", "   \n"):
        with pytest.raises(RegisterCorrectionError, match="needs a reason"):
            initiative_register_correct(alpha, actor="op", reason=reason, title={"en": "Corrected"})
    assert _register_data(alpha) == before
    assert AuditEvent.objects.count() == events


def test_a_correction_is_saved_and_audited_with_the_fields_and_the_reason(alpha: Initiative) -> None:
    contacts = [
        {"name": "Eva Nowak", "email": "eva.nowak@example.eu"},
        {"name": "Jens Ørsted", "email": "substitute@example.eu"},
    ]
    initiative_register_correct(
        alpha,
        actor="op",
        reason=" The Commission corrected a typo in its register. ",
        title={"en": "Corrected title", "fr": "Titre corrigé"},
        contact_persons=contacts,
    )
    alpha.refresh_from_db()
    assert alpha.title == {"en": "Corrected title", "fr": "Titre corrigé"}
    assert alpha.contact_persons == contacts
    assert alpha.languages == ["en", "fr"]  # the texts' languages
    event = AuditEvent.objects.filter(initiative=alpha).latest("id")
    assert (event.action, event.actor) == ("initiative.register_corrected", "op")
    assert event.details == {
        "fields": ["languages", "title", "contact_persons"],
        "reason": "The Commission corrected a typo in its register.",
        "frozen": True,
    }
    assert "eva.nowak" not in json.dumps(event.details)  # names the fields, never the contacts


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"website_url": "https://x.example/"}, "Not register data: website_url"),
        ({"title": {"en": ""}}, "the title in the registered language"),
        ({"title": {"en": "x" * 201}}, "at most 200 characters"),
        ({"title": {"en": "x", "xx": "y"}}, "Not official EU languages: xx"),
        ({"title": ["en", "x"]}, "The title is"),
        ({"subject": {"en": 5}}, "The subject is"),
        ({"contact_persons": [{"name": "Eva", "email": "eva@example.eu"}]}, "at least two contact persons"),
        ({"contact_persons": "Eva <eva@example.eu>"}, "The contact persons are a list"),
        ({"register_url": "javascript:alert(1)"}, "must be an http(s) address"),
        ({"registered_language": "xx"}, "one of the 24 official EU languages"),
        ({"languages": ["fr"]}, "must include the registered language"),
        ({"title": {"en": "Initiative alpha"}}, "changes nothing"),
    ],
)
def test_a_bad_correction_is_refused_and_changes_nothing(
    alpha: Initiative, changes: dict[str, Any], message: str
) -> None:
    before, events = _register_data(alpha), AuditEvent.objects.count()
    with pytest.raises(RegisterCorrectionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        initiative_register_correct(alpha, actor="op", reason="a reason", **changes)
    assert _register_data(alpha) == before
    assert AuditEvent.objects.count() == events


def test_correcting_alpha_does_not_touch_beta(alpha: Initiative, beta: Initiative) -> None:
    beta_before = _register_data(beta)
    initiative_register_correct(alpha, actor="op", reason="register corrected", subject={"en": "Corrected"})
    assert _register_data(beta) == beta_before
    assert not AuditEvent.objects.filter(initiative=beta, action="initiative.register_corrected").exists()


# --- the correction page of the console ---


def _correction_form(initiative: Initiative, **overrides: str) -> dict[str, str]:
    form = {
        "registered_language": initiative.registered_language,
        "languages": ", ".join(initiative.languages),
        "title": json.dumps(initiative.title),
        "subject": json.dumps(initiative.subject),
        "objectives": json.dumps(initiative.objectives),
        "register_url": initiative.register_url,
        "contact_persons": "\n".join(f"{p['name']} <{p['email']}>" for p in initiative.contact_persons),
        "reason": "The Commission corrected its register.",
    }
    form.update(overrides)
    return form


def test_the_correction_page_corrects_with_a_reason_and_audits_the_operator(
    operator: Client, alpha: Initiative, beta: Initiative
) -> None:
    beta_before = _register_data(beta)
    url = f"/operator/tenants/initiative/{alpha.pk}/correct/"
    page = operator.get(url)
    assert page.status_code == 200
    assert "Eva Nowak &lt;representative@example.eu&gt;" in page.content.decode()

    response = operator.post(
        url,
        _correction_form(
            alpha,
            objectives=json.dumps({"en": "Corrected objectives."}),
            contact_persons='Eva Nowak <eva@example.eu>\r\n"Ørsted, Jens" <jens@example.eu>',
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert response["Location"] == f"/operator/tenants/initiative/{alpha.pk}/change/"
    alpha.refresh_from_db()
    assert alpha.objectives == {"en": "Corrected objectives."}
    assert alpha.contact_persons[1] == {"name": "Ørsted, Jens", "email": "jens@example.eu"}
    event = AuditEvent.objects.filter(initiative=alpha).latest("id")
    assert (event.action, event.actor, event.details["fields"]) == (
        "initiative.register_corrected",
        "op",
        ["objectives", "contact_persons"],
    )
    assert _register_data(beta) == beta_before


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"reason": ""}, "This field is required."),
        ({"reason": "   "}, "This field is required."),
        ({"title": "not json"}, "Enter a valid JSON."),
        ({"contact_persons": "Eva Nowak <eva@example.eu>"}, "at least two contact persons"),
        ({"contact_persons": "Eva <eva@example.eu>\nnobody"}, "Line 2:"),
        ({"title": '{"en": ""}'}, "the title in the registered language"),
        ({"languages": "en, zz"}, "official EU language codes"),
        ({"register_url": "ftp://x.example/"}, "must be an http(s) address"),
        ({"register_url": "not a url"}, "Enter a valid URL."),
    ],
)
def test_a_bad_correction_in_the_console_is_a_400_and_changes_nothing(
    operator: Client, alpha: Initiative, overrides: dict[str, str], message: str
) -> None:
    before, events = _register_data(alpha), AuditEvent.objects.count()
    response = operator.post(
        f"/operator/tenants/initiative/{alpha.pk}/correct/",
        _correction_form(alpha, objectives=json.dumps({"en": "Changed"}), **overrides),
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    assert _register_data(alpha) == before
    assert AuditEvent.objects.count() == events


def test_view_only_staff_cannot_correct_and_an_unknown_initiative_is_a_404(
    platform_client: Client, operator: Client, alpha: Initiative
) -> None:
    assert operator.get("/operator/tenants/initiative/999999/correct/").status_code == 404
    viewer = get_user_model().objects.create_user("viewer", password="a-long-viewer-password", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_initiative"))
    viewer_client = Client(HTTP_HOST=platform_client.defaults["HTTP_HOST"])
    verified_login(viewer_client, viewer)
    before = _register_data(alpha)
    url = f"/operator/tenants/initiative/{alpha.pk}/correct/"
    assert viewer_client.get(url).status_code == 403
    response = viewer_client.post(url, _correction_form(alpha, objectives=json.dumps({"en": "Changed"})))
    assert response.status_code == 403
    assert _register_data(alpha) == before


def test_collection_opening_while_the_change_form_is_open_is_a_message_not_a_500(
    operator: Client, alpha: Initiative, monkeypatch: pytest.MonkeyPatch
) -> None:
    _not_yet_open(alpha)
    from tenants.admin import InitiativeAdmin

    readonly = InitiativeAdmin.get_readonly_fields

    def opens_meanwhile(self: InitiativeAdmin, request: Any, obj: Any = None) -> Any:
        fields = readonly(self, request, obj)
        Initiative.objects.filter(pk=alpha.pk).update(collection_opened_on=timezone.localdate())
        return fields

    monkeypatch.setattr(InitiativeAdmin, "get_readonly_fields", opens_meanwhile)
    before = _register_data(alpha)
    response = operator.post(
        f"/operator/tenants/initiative/{alpha.pk}/change/",
        _change_form(alpha, title='{"en": "Renamed"}'),
        follow=True,
    )
    assert response.status_code == 200
    assert "frozen since collection opened" in response.content.decode()
    assert _register_data(alpha) == before
