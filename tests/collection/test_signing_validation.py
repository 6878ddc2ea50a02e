"""Signing: the validation of the Annex III form's fields (REQ-10-14): required fields, national numbers
and their check digits, the age on the signing day (typed or read from the number), documents, postal
codes and the country of residence, and any text a user can send."""

from __future__ import annotations

import datetime
from urllib.parse import urlencode

import pytest
from dateutil.relativedelta import relativedelta
from django.utils import timezone

from collection.models import Statement
from regulation.member_states import member_states
from tenants.models import Initiative
from tests.collection.signing import VALID_NUMBERS, sign, valid_form
from tests.conftest import client_for, solved_proof

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("country", sorted(member_states()))
def test_a_missing_field_is_a_400_with_the_message_and_nothing_stored(
    alpha: Initiative, country: str
) -> None:
    data = valid_form(country)
    del data["family_names"]
    response = sign(alpha, country, data)
    assert response.status_code == 400
    page = response.content.decode()
    assert "This field is required." in page and 'href="#id_family_names"' in page
    with alpha:
        assert Statement.objects.count() == 0


@pytest.mark.parametrize(
    "country", sorted(code for code, state in member_states().items() if not state.is_part_a)
)
def test_a_document_the_country_does_not_accept_is_refused(alpha: Initiative, country: str) -> None:
    data = valid_form(country)
    data["document_type"] = "driving.licence"
    response = sign(alpha, country, data)
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()


@pytest.mark.parametrize(
    ("country", "document"),
    sorted(
        key
        for key in VALID_NUMBERS
        if key not in {("RO", "id.card"), ("MT", "id.card"), ("HU", "personal.number")}
    ),
)
def test_a_wrong_check_digit_is_refused(alpha: Initiative, country: str, document: str) -> None:
    data = valid_form(country)
    number = VALID_NUMBERS[(country, document)]
    last_digit = max(index for index, char in enumerate(number) if char.isdigit())
    wrong = number[:last_digit] + str((int(number[last_digit]) + 1) % 10) + number[last_digit + 1 :]
    data.update(document_type=document, document_number=wrong)
    response = sign(alpha, country, data)
    assert response.status_code == 400, response.content.decode()[:2000]
    page = response.content.decode()
    assert "check digit" in page or "not a valid number" in page or "wrong length" in page


def _pesel_born(day: datetime.date) -> str:
    month = day.month + (20 if day.year >= 2000 else 0)
    base = f"{day.year % 100:02d}{month:02d}{day.day:02d}1234"
    check = (
        10 - sum(int(d) * w for d, w in zip(base, [1, 3, 7, 9, 1, 3, 7, 9, 1, 3], strict=True)) % 10
    ) % 10
    return base + str(check)


@pytest.mark.parametrize(
    "country", sorted(code for code, state in member_states().items() if state.is_part_a)
)
def test_an_under_age_signatory_is_refused_part_a(alpha: Initiative, country: str) -> None:
    state = member_states()[country]
    data = valid_form(country)
    birth = timezone.localdate() - relativedelta(years=state.minimum_age) + datetime.timedelta(days=1)
    data["date_of_birth"] = birth.isoformat()
    response = sign(alpha, country, data)
    assert response.status_code == 400
    assert f"at least {state.minimum_age} years old" in response.content.decode()


def test_the_age_rule_is_on_the_signing_day_and_the_birthday_counts(alpha: Initiative) -> None:
    data = valid_form("EL")  # 17 in Greece
    data["date_of_birth"] = (timezone.localdate() - relativedelta(years=17)).isoformat()
    assert sign(alpha, "EL", data).status_code == 303


def test_an_under_age_signatory_is_refused_by_the_birth_date_in_the_number(alpha: Initiative) -> None:
    data = valid_form("PL")
    data["document_number"] = _pesel_born(timezone.localdate() - relativedelta(years=17))
    response = sign(alpha, "PL", data)
    assert response.status_code == 400
    assert "at least 18 years old" in response.content.decode()


def _national_number_born(country: str, day: datetime.date) -> str:
    """A valid national number of `country` that encodes `day` as the date of birth (the serial digits
    are made up; the check digit is the one python-stdnum accepts)."""
    from collection.validation import NATIONAL_NUMBERS

    yy, mm, dd = f"{day.year % 100:02d}", f"{day.month:02d}", f"{day.day:02d}"
    century = day.year >= 2000
    if country == "BE":  # two check digits: 97 - (number mod 97), with a 2 in front for the 2000s
        base = f"{yy}{mm}{dd}123"
        return base + f"{97 - int(('2' if century else '') + base) % 97:02d}"
    base = {
        "BG": f"{yy}{day.month + (40 if century else 0):02d}{dd}123",
        "EE": f"{6 if century else 4}{yy}{mm}{dd}123",
        "LT": f"{6 if century else 4}{yy}{mm}{dd}123",
        "LV": f"{dd}{mm}{yy}{2 if century else 1}123",
        "RO": f"{6 if century else 2}{yy}{mm}{dd}40123",
        "SE": f"{yy}{mm}{dd}-123",
        "SI": f"{dd}{mm}{day.year % 1000:03d}50123",
    }[country]
    module = NATIONAL_NUMBERS[(country, "personal.number")]
    return next(base + digit for digit in "0123456789" if module.is_valid(base + digit))


@pytest.mark.parametrize("country", ["BE", "BG", "EE", "LT", "LV", "RO", "SE", "SI"])
def test_an_under_age_signatory_is_refused_by_the_birth_date_in_their_national_number(
    alpha: Initiative, country: str
) -> None:
    state = member_states()[country]
    document = "national.id.number" if country == "BE" else "personal.number"
    a_day_short = timezone.localdate() - relativedelta(years=state.minimum_age) + datetime.timedelta(days=1)
    data = {**valid_form(country), "document_type": document}
    data["document_number"] = _national_number_born(country, a_day_short)
    response = sign(alpha, country, data)
    assert response.status_code == 400, response.content.decode()[:1500]
    assert f"at least {state.minimum_age} years old" in response.content.decode()
    # On their birthday they may sign.
    data["document_number"] = _national_number_born(country, a_day_short - datetime.timedelta(days=1))
    assert sign(alpha, country, data).status_code == 303


@pytest.mark.parametrize(
    ("country", "document", "number", "accepted"),
    [
        ("IT", "passport", "YA1234567", True),
        ("AT", "passport", "P 1234567", True),
        ("IT", "passport", "AAAAA", False),  # no digit
        ("AT", "passport", "12345", False),  # shorter than any passport number
        ("AT", "passport", "P12345678901", False),  # longer than the passport's number field
        ("AT", "id.card", "12345678", True),
        ("CZ", "id.card", "ABCDEFGH", False),
    ],
)
def test_passport_and_id_card_numbers_must_be_plausible(
    alpha: Initiative, country: str, document: str, number: str, accepted: bool
) -> None:
    data = {**valid_form(country), "document_type": document, "document_number": number}
    response = sign(alpha, country, data)
    assert response.status_code == (303 if accepted else 400), response.content.decode()[:1500]
    if not accepted:
        assert "not a valid number for this document" in response.content.decode()


def test_an_under_age_hungarian_is_refused_by_the_birth_date_in_the_personal_number(
    alpha: Initiative,
) -> None:
    a_day_short = timezone.localdate() - relativedelta(years=18) + datetime.timedelta(days=1)
    data = {**valid_form("HU"), "document_type": "personal.number"}
    data["document_number"] = f"3{a_day_short:%y%m%d}1234"
    response = sign(alpha, "HU", data)
    assert response.status_code == 400 and "at least 18 years old" in response.content.decode()
    data["document_number"] = f"3{a_day_short - datetime.timedelta(days=1):%y%m%d}1234"
    assert sign(alpha, "HU", data).status_code == 303


def test_a_latvian_company_number_is_not_a_personal_code(alpha: Initiative) -> None:
    data = {**valid_form("LV"), "document_number": "40003032949"}  # a company's VAT number: check digit holds
    response = sign(alpha, "LV", data)
    assert response.status_code == 400
    assert "not a valid number for this document" in response.content.decode()


def test_without_a_postal_code_only_where_addresses_have_none(alpha: Initiative) -> None:
    # Ireland: the Eircode is optional (member_states.csv).
    assert sign(alpha, "IE", {**valid_form("IE"), "postal_code": ""}).status_code == 303
    # A German living in a country without postal codes (Google's address data) ...
    abroad = {**valid_form("DE"), "country_of_residence": "AE", "postal_code": ""}
    assert sign(alpha, "DE", abroad).status_code == 303
    # ... but in Germany, or in a country whose addresses carry one, it is required.
    for residence in ("DE", "US"):
        data = {**valid_form("DE"), "family_names": f"Ohne {residence}", "postal_code": ""}
        data["country_of_residence"] = residence
        response = sign(alpha, "DE", data)
        assert response.status_code == 400 and "This field is required." in response.content.decode()
    with alpha:
        assert Statement.objects.count() == 2


@pytest.mark.parametrize("residence", ["all", "ALL", "XX", "x" * 5000])
def test_a_made_up_country_of_residence_without_postal_code_is_a_400(
    alpha: Initiative, residence: str
) -> None:
    data = {**valid_form("DE"), "country_of_residence": residence, "postal_code": ""}
    response = sign(alpha, "DE", data)
    assert response.status_code == 400 and "Select a valid choice" in response.content.decode()
    with alpha:
        assert Statement.objects.count() == 0


@pytest.mark.parametrize("code", ["EU", "EZ", "UN", "ZZ", "QO", "XA", "XB"])
def test_a_country_of_residence_must_be_a_country(alpha: Initiative, code: str) -> None:
    response = sign(alpha, "FR", {**valid_form("FR"), "country_of_residence": code})
    assert response.status_code == 400 and "Select a valid choice" in response.content.decode()


@pytest.mark.parametrize(
    "country", sorted(code for code, state in member_states().items() if state.is_part_a)
)
def test_every_field_of_part_a_is_required(alpha: Initiative, country: str) -> None:
    for field in ("first_names", "family_names", "street", "street_number", "city", "country_of_residence",
                  "date_of_birth", "postal_code"):  # fmt: skip
        if field == "postal_code" and country == "IE":
            continue  # the Eircode is optional
        data = valid_form(country)
        del data[field]
        response = sign(alpha, country, data)
        assert response.status_code == 400, field
        assert f'href="#id_{field}"' in response.content.decode(), field
    with alpha:
        assert Statement.objects.count() == 0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("first_names", "=HYPERLINK(1)", "cannot start with"),
        ("family_names", "@SUM(A1)", "cannot start with"),
        ("first_names", "Ann\x00e", "not allowed"),
        ("first_names", "a" * 101, "At most 100 characters"),
        ("first_names", "1234", "letters"),
        ("date_of_birth", "1990-02-30", "Enter a valid date"),
        ("date_of_birth", "30/01/1990", "Enter a valid date"),
        ("date_of_birth", "2999-01-01", "future"),
        ("postal_code", "ABCDE", "not a valid postal code"),
        ("country_of_residence", "XX", "Select a valid choice"),
        ("declaration", "", "confirm the declaration"),
    ],
)
def test_bad_input_gets_its_message_next_to_the_field(
    alpha: Initiative, field: str, value: str, message: str
) -> None:
    data = valid_form("FR")
    data[field] = value
    if not value:
        del data[field]
    response = sign(alpha, "FR", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    with alpha:
        assert Statement.objects.count() == 0


def test_a_citizen_living_abroad_gives_the_postal_code_of_the_country_of_residence(alpha: Initiative) -> None:
    data = {**valid_form("FR"), "country_of_residence": "BE", "postal_code": "1049"}
    assert sign(alpha, "FR", data).status_code == 303


# -- any text a user can send ------------------------------------------------------------------------------


def form_fields(country: str) -> list[str]:
    """Every field the country's form has, as the form builds it (new fields are covered at once)."""
    from collection.forms import StatementForm

    form = StatementForm(member_state=member_states()[country], signing_day=timezone.localdate())
    return list(form.fields)


@pytest.mark.parametrize("country", ["FR", "PL", "AT"])  # Part A; Part B with a number; two documents
def test_any_text_in_any_field_gives_303_or_4xx_and_no_row_on_4xx(alpha: Initiative, country: str) -> None:
    from django.test import override_settings
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hypothesis_settings
    from hypothesis import strategies as st

    client = client_for(alpha)
    # Every field of the form, the proof of work's and the language of the page.
    fields = [*form_fields(country), "altcha"]

    @hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        texts=st.dictionaries(st.sampled_from(fields), st.text(max_size=300), min_size=1, max_size=3),
        language=st.text(max_size=20),
    )
    def check(texts: dict[str, str], language: str) -> None:
        with alpha:
            before = Statement.objects.count()
        data = {**valid_form(country), "altcha": solved_proof(client), **texts}
        response = client.post(f"/sign/{country}/?{urlencode({'lang': language})}", data)
        assert response.status_code in (303, 400, 403, 409), response.status_code
        with alpha:
            after = Statement.objects.count()
        assert after == before + (1 if response.status_code == 303 else 0)

    with override_settings(
        RATE_LIMIT_ADDRESS_HARD=10_000,
        RATE_LIMIT_ADDRESS_SOFT=10_000,
        RATE_LIMIT_NETWORK_HARD=10_000,
        RATE_LIMIT_NETWORK_SOFT=10_000,
    ):
        check()
