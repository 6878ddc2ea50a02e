"""The statement of support form of one Member State (Annex III Part A or B), built from its data.
Field names are the stable ones of DESIGN.md."""

from __future__ import annotations

import datetime
import functools
from typing import Any

from babel import Locale
from django import forms
from django.core.exceptions import ValidationError
from django.utils import translation
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from collection.validation import (
    NAME_MAX_LENGTH,
    birth_date_in_number,
    check_minimum_age,
    clean_document_number,
    clean_name,
    clean_postal_code,
    clean_text,
)
from regulation.member_states import MemberState, iso_code, member_states

DOCUMENT_LABELS = {
    "passport": _("Passport"),
    "id.card": _("Identity card"),
    "personal.number": _("Personal identification number"),
    "national.id.number": _("National identification number"),
    "personal.id": _("Personal identification number (OIB)"),
    "citizens.card": _("Citizen card"),
}


@functools.lru_cache(maxsize=27 * 24)
def country_name(code: str, language: str) -> str:
    """A country's name in `language`, from the CLDR data Babel maintains."""
    return str(Locale.parse(language).territories.get(iso_code(code), code))


# Two-letter CLDR territories where nobody lives: unions and groupings, "unknown", test pseudo-locales.
NOT_COUNTRIES = frozenset({"EU", "EZ", "UN", "QO", "ZZ", "XA", "XB"})


@functools.lru_cache(maxsize=24)
def residence_choices(language: str) -> tuple[tuple[str, str], ...]:
    """Every country, named and sorted in `language` (computed once per language: CLDR lookups and the
    sort cost more than the rest of a form)."""
    territories = Locale.parse(language).territories
    # Two-letter codes are countries; the rest (001, 150, ...) are regions.
    countries = [
        (code, str(name))
        for code, name in territories.items()
        if len(code) == 2 and code.isalpha() and code not in NOT_COUNTRIES
    ]
    return (("", ""), *sorted(countries, key=lambda choice: choice[1].casefold()))


@functools.lru_cache(maxsize=24)
def residence_codes(language: str) -> frozenset[str]:
    return frozenset(code for code, _name in residence_choices(language) if code)


class ResidenceField(forms.ChoiceField):
    """The country of residence, from about 250 choices. They are given as a callable, so that no form
    copies them, and a value is checked against a set: Django's ChoiceField would walk and normalise every
    choice on each check (together 0.7 ms a form, measured)."""

    def __init__(self, *, language: str, **kwargs: Any) -> None:
        super().__init__(choices=functools.partial(residence_choices, language), **kwargs)
        self.language = language

    def valid_value(self, value: Any) -> bool:
        return value in residence_codes(self.language)


# Our own wording of the generic messages, so that every language has them (Django has no Maltese).
FIELD_MESSAGES = {
    "required": _("This field is required."),
    "invalid": _("Enter a valid value."),
    "invalid_choice": _("Select a valid choice."),
    "max_length": _("At most %(limit_value)d characters."),
    "null_characters_not_allowed": _("This field contains characters that are not allowed."),
}
DATE_MESSAGES = {**FIELD_MESSAGES, "invalid": _("Enter a valid date in the form YYYY-MM-DD.")}


class StatementForm(forms.Form):
    """Only what Annex III asks of this Member State (REQ-11), plus the declaration (REQ-16)."""

    def __init__(
        self, *args: Any, member_state: MemberState, signing_day: datetime.date, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.member_state = member_state
        self.signing_day = signing_day
        language = get_language() or "en"
        self.fields["first_names"] = forms.CharField(label=_("Full first names"), max_length=NAME_MAX_LENGTH)
        self.fields["family_names"] = forms.CharField(label=_("Family names"), max_length=NAME_MAX_LENGTH)
        if member_state.is_part_a:
            self.fields["street"] = forms.CharField(label=_("Street"), max_length=NAME_MAX_LENGTH)
            self.fields["street_number"] = forms.CharField(label=_("Number"), max_length=20)
            # Required or not by the country of residence (clean_postal_code): some have none.
            self.fields["postal_code"] = forms.CharField(
                label=_("Postal code"), max_length=12, required=False
            )
            self.fields["city"] = forms.CharField(label=_("City"), max_length=NAME_MAX_LENGTH)
            self.fields["country_of_residence"] = ResidenceField(
                language=language, label=_("Country of residence")
            )
            self.fields["date_of_birth"] = forms.DateField(
                label=_("Date of birth"),
                input_formats=["%Y-%m-%d"],
                help_text=_("YYYY-MM-DD"),
                widget=forms.DateInput(attrs={"type": "date"}),
            )
        else:
            self.fields["document_type"] = forms.ChoiceField(
                label=_("Type of document"),
                choices=[(doc, DOCUMENT_LABELS.get(doc, doc)) for doc in member_state.accepted_documents],
                widget=forms.RadioSelect if len(member_state.accepted_documents) > 1 else forms.Select,
            )
            self.fields["document_number"] = forms.CharField(label=_("Document number"), max_length=40)
        self.fields["declaration"] = forms.BooleanField(
            label=_(
                "I hereby certify that the information that I have provided in this form is correct "
                "and that I have not already supported this proposed citizens' initiative."
            ),
            error_messages={"required": _("You must confirm the declaration to support the initiative.")},
        )
        self.fields["email"] = forms.EmailField(
            label=_("E-mail address (optional)"),
            required=False,
            max_length=254,
            help_text=_("Only if you want the organisers to keep you informed about this initiative."),
        )
        self.fields["email_consent"] = forms.BooleanField(
            label=_(
                "I agree that the organisers may use my e-mail address to inform me about this initiative. "
                "It is kept apart from my statement of support."
            ),
            required=False,
        )
        for name, field in self.fields.items():
            if name not in ("declaration", "email_consent"):
                messages = DATE_MESSAGES if isinstance(field, forms.DateField) else FIELD_MESSAGES
                field.error_messages.update(messages)

    @classmethod
    def to_validate(
        cls, data: Any, *, member_state: MemberState, signing_day: datetime.date
    ) -> StatementForm:
        """The same form for a POST that is validated and never rendered (eci_platform.signing_lane): its
        fields, as __init__ builds them, are made once per Member State and language and shared, since
        building them per request was 9 % of an accepted statement's CPU (py-spy). Cleaning reads a
        field and never changes it."""
        form = cls.__new__(cls)
        forms.Form.__init__(form, data)
        form.member_state = member_state
        form.signing_day = signing_day
        form.fields = dict(_validation_fields(member_state.code, get_language() or "en"))
        return form

    def clean_first_names(self) -> str:
        return clean_name(self.cleaned_data["first_names"])

    def clean_family_names(self) -> str:
        return clean_name(self.cleaned_data["family_names"])

    def clean_street(self) -> str:
        return clean_text(self.cleaned_data["street"])

    def clean_street_number(self) -> str:
        return clean_text(self.cleaned_data["street_number"], max_length=20)

    def clean_city(self) -> str:
        return clean_text(self.cleaned_data["city"])

    def clean_postal_code(self) -> str:
        # The format is that of the country of residence, where the form knows it.
        residence = self.data.get("country_of_residence", "")
        if residence in ("", iso_code(self.member_state.code)):
            return clean_postal_code(self.member_state.code, self.cleaned_data["postal_code"])
        if residence in residence_codes(get_language() or "en"):
            return clean_postal_code(residence, self.cleaned_data["postal_code"])
        # No country to judge it by: the country field says what is wrong, and this code goes nowhere
        # (raw text never reaches a lookup or a cache).
        return clean_text(self.cleaned_data["postal_code"], max_length=12)

    def clean_date_of_birth(self) -> datetime.date:
        birth: datetime.date = self.cleaned_data["date_of_birth"]
        check_minimum_age(birth, self.member_state.minimum_age, self.signing_day)
        return birth

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("email") and not cleaned.get("email_consent"):
            self.add_error(
                "email_consent", _("Tick this box to give your e-mail address, or leave the address empty.")
            )
        if cleaned.get("email_consent") and not cleaned.get("email") and "email" not in self.errors:
            self.add_error("email", _("Enter the e-mail address you agree to give, or untick the box."))
        document_type = cleaned.get("document_type")
        raw_number = cleaned.get("document_number")
        if document_type and raw_number:
            try:
                number = clean_document_number(self.member_state.code, document_type, raw_number)
            except ValidationError as error:
                self.add_error("document_number", error)
            else:
                cleaned["document_number"] = number
                birth = birth_date_in_number(self.member_state.code, document_type, number)
                if birth is not None:
                    try:
                        check_minimum_age(birth, self.member_state.minimum_age, self.signing_day)
                    except ValidationError as error:
                        self.add_error("document_number", error)
        return cleaned

    def personal_data(self) -> dict[str, str]:
        """What is sealed: the Annex III fields, as text."""
        data = {
            name: value
            for name, value in self.cleaned_data.items()
            if name not in ("declaration", "email", "email_consent")
        }
        if "date_of_birth" in data:
            data["date_of_birth"] = data["date_of_birth"].isoformat()
        return {name: str(value) for name, value in data.items()}

    def contact_email(self) -> str:
        """The e-mail address given with its consent, or nothing; it is never part of the statement."""
        return str(self.cleaned_data.get("email") or "") if self.cleaned_data.get("email_consent") else ""


@functools.lru_cache(maxsize=27 * 24)
def _validation_fields(code: str, language: str) -> dict[str, forms.Field]:
    with translation.override(language):
        form = StatementForm(member_state=member_states()[code], signing_day=datetime.date.today())
    return dict(form.fields)


def nationality_choices(language: str) -> list[tuple[str, str]]:
    """The 27 Member States, by their name in `language`."""
    choices = [(code, country_name(code, language)) for code in member_states()]
    return sorted(choices, key=lambda choice: choice[1].casefold())
